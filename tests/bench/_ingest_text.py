"""Tables and prose of the ingestion benchmark, from its measurements (no measuring here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tests.bench._ingest_ceiling import SMALL_BATCH, STAGED, WRITER, CeilingResult
from tests.bench._ingest_profile import Profile
from tests.bench._ingest_runs import DISTURBED_PCT, RunResult

if TYPE_CHECKING:
    from tests.bench.bench_ingest import Measured

__all__ = [
    "ceiling_rows",
    "component_rows",
    "marker_rows",
    "notes",
    "result_rows",
    "target_rows",
    "top_rows",
    "wait_rows",
    "where_the_time_goes",
]

Rows = list[tuple[str, ...]]
P99_TARGET_MS = 10.0


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _latency(r: RunResult) -> str:
    s = r.latency
    few = f" (only {s.count:,} ticks)" if 0 < s.count < 10_000 else ""
    return f"{_ms(s.p50_ms)} / {_ms(s.p99_ms)} / {_ms(s.p999_ms)} / {_ms(s.max_ms)}{few}"


_ALONE = ("ccxt-client", "ccxt-watch")


def _cpu(r: RunResult) -> str:
    c = r.cpu
    server = f"{c['server']:.0f}" if r.feed != "synthetic" else "-"
    postgres = f"{c['postgres']:.0f}" if r.feed not in _ALONE else "-"
    return f"{c['rata']:.0f} / {server} / {postgres} / {c['others']:.0f}"


def _drain(r: RunResult) -> str:
    done = "delivered" if r.feed in _ALONE else "committed"
    if r.lost <= 0:
        return f"all {r.total_committed:,} {done}"
    return f"{r.lost:,} of {r.total_offered:,} not yet {done} when stopped ({r.drain_s:.0f} s after the source)"


def _label(r: RunResult) -> str:
    rate = f"{r.target_rate:,.0f}/s" if r.target_rate else "unpaced"
    what = {
        "ccxt": "end to end (CcxtFeed, direct aggTrade stream)",
        "synthetic": "pipeline alone (SyntheticFeed)",
        "ccxt-client": "feed alone (CcxtFeed, direct stream, no pipeline)",
        "ccxt-watch": "ccxt watch_trades alone (the previous path, no pipeline)",
    }[r.feed]
    disturbed = f" [disturbed: others {r.cpu['others']:.0f}%]" if r.cpu["others"] > DISTURBED_PCT else ""
    tries = f" (attempt {r.attempts})" if r.attempts > 1 else ""
    return f"{what}, {rate}{tries}{disturbed}"


def _kept(r: RunResult) -> str:
    if not r.target_rate:
        return "n/a (unpaced)"
    if not r.source_on_target:
        return f"not tested: the source offered {r.offered_rate:,.0f}/s"
    return "yes" if r.kept_up else "no"


def result_rows(
    ccxt: Mapping[int, RunResult],
    synthetic: Mapping[int, RunResult],
    client: Mapping[int, RunResult],
    watch: Mapping[int, RunResult],
    unpaced: RunResult,
) -> tuple[tuple[str, ...], Rows]:
    header = (
        "run",
        "offered ticks/s",
        "committed ticks/s (alone: delivered)",
        "latency ms p50 / p99 / p99.9 / max",
        "CPU % of one core: rata / server / PostgreSQL / other processes",
        "backlog start -> end (growth, s of ticks)",
        "after the source stopped",
        "kept up",
    )
    rows: Rows = []
    ordered = [
        r
        for rate in sorted(ccxt)
        for r in (ccxt[rate], synthetic[rate], client[rate], *([watch[rate]] if rate in watch else []))
    ] + [unpaced]
    for r in ordered:
        rows.append(
            (
                _label(r),
                f"{r.offered_rate:,.0f}",
                f"{r.committed_rate:,.0f} ({r.ratio:.1%})",
                _latency(r),
                _cpu(r),
                f"{r.backlog_start:,.0f} -> {r.backlog_end:,.0f} ({r.growth_s:+.2f})",
                _drain(r),
                _kept(r),
            )
        )
    return header, rows


def _status(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _keeps_up_text(r: RunResult) -> str:
    return (
        f"committed {r.committed_rate:,.0f}/s of {r.offered_rate:,.0f}/s offered ({r.ratio:.1%}); "
        f"backlog growth {r.growth_s:+.2f} s; {_drain(r)}; rata CPU {r.cpu['rata']:.0f}% of a core"
    )


def _p99_text(r: RunResult) -> str:
    s = r.latency
    return f"p99 {_ms(s.p99_ms)} ms (p50 {_ms(s.p50_ms)}, p99.9 {_ms(s.p999_ms)}, max {_ms(s.max_ms)})"


def best_ceiling(ceiling: Sequence[CeilingResult]) -> CeilingResult:
    return max((c for c in ceiling if c.name.startswith("raw")), key=lambda c: c.rate)


def pipeline_best(m: Measured) -> RunResult:
    """Return the SyntheticFeed run that committed the most ticks a second (paced or unpaced)."""
    return max([*m.synthetic.values(), m.unpaced], key=lambda r: r.committed_rate)


def _writer_alone(ceiling: Sequence[CeilingResult]) -> CeilingResult:
    """Return the best rate of the writer's own statement with full batches (1 or 2 connections)."""
    return max((c for c in ceiling if c.name.startswith(WRITER) and c.batch > SMALL_BATCH), key=lambda c: c.rate)


def target_rows(m: Measured, rates: Sequence[int]) -> tuple[tuple[str, ...], Rows]:
    low, high = min(rates), max(rates)
    e2e_high, e2e_low = m.ccxt[high], m.ccxt[low]
    syn_high, syn_low = m.synthetic[high], m.synthetic[low]
    ceiling = best_ceiling(m.ceiling)
    writer = _writer_alone(m.ceiling)
    best = pipeline_best(m)
    kept_client = [r for r in sorted(m.client) if m.client[r].kept_up]
    client_high = m.client[high]
    p99_ok = lambda r: r.latency.p99_ms is not None and r.latency.p99_ms < P99_TARGET_MS  # noqa: E731
    rows: Rows = [
        (
            f"keeps up at {high:,} ticks/s, END TO END (local WS server -> CcxtFeed -> pipeline -> PostgreSQL)",
            _keeps_up_text(e2e_high),
            _status(e2e_high.kept_up),
        ),
        (f"p99 < {P99_TARGET_MS:.0f} ms at {low:,} ticks/s, END TO END", _p99_text(e2e_low), _status(p99_ok(e2e_low))),
        (
            f"keeps up at {high:,} ticks/s, PIPELINE CAPACITY (SyntheticFeed in process, no network)",
            _keeps_up_text(syn_high),
            _status(syn_high.kept_up),
        ),
        (
            f"p99 < {P99_TARGET_MS:.0f} ms at {low:,} ticks/s, PIPELINE (SyntheticFeed)",
            _p99_text(syn_low),
            _status(p99_ok(syn_low)),
        ),
        (
            "FEED CAPACITY (CcxtFeed alone, direct aggTrade stream, batches counted and dropped)",
            f"kept up at: {', '.join(f'{r:,}/s' for r in kept_client) or 'none of the rates'}; "
            f"at {high:,}/s offered it delivered {client_high.committed_rate:,.0f}/s "
            f"(rata CPU {client_high.cpu['rata']:.0f}% of a core)",
            "(info)",
        ),
        *[
            (
                f"ccxt watch_trades alone at {rate:,}/s (the previous path)",
                f"delivered {r.committed_rate:,.0f}/s of {r.offered_rate:,.0f}/s, rata CPU {r.cpu['rata']:.0f}% of "
                f"a core (the direct stream at that rate: {m.client[rate].cpu['rata']:.0f}%); "
                f"p99 {_ms(r.latency.p99_ms)} ms",
                "(info)",
            )
            for rate, r in sorted(m.watch.items())
        ],
        (
            "PIPELINE CAPACITY: the highest committed rate of the SyntheticFeed runs",
            f"{best.committed_rate:,.0f} ticks/s ({_label(best)}; rata CPU {best.cpu['rata']:.0f}%, PostgreSQL "
            f"{best.cpu['postgres']:.0f}%); unpaced: {m.unpaced.committed_rate:,.0f} ticks/s",
            "(info)",
        ),
        ("ceiling: raw asyncpg COPY (best way, not idempotent)", f"{ceiling.rate:,.0f} rows/s ({ceiling.name})",
         "(info)"),
        ("the writer's statement alone (idempotent, best way)", f"{writer.rate:,.0f} rows/s ({writer.name})", "(info)"),
        (
            "pipeline capacity / raw COPY ceiling",
            f"{best.committed_rate / ceiling.rate:.2f} (vs the writer's statement alone: "
            f"{best.committed_rate / writer.rate:.2f})",
            "(info)",
        ),
        (
            f"end to end at {high:,} offered / raw COPY ceiling",
            f"{e2e_high.committed_rate / ceiling.rate:.2f}",
            "(info)",
        ),
    ]  # fmt: skip
    return ("target / measure", "measured", "result"), rows


def ceiling_rows(ceiling: Sequence[CeilingResult]) -> tuple[tuple[str, ...], Rows]:
    header = ("way (prepared rows, each write its own transaction)", "rows a write", "rows", "seconds writing",
              "rows/s", "one round ms p50 / p99 / max")  # fmt: skip
    rows: Rows = [
        (
            c.name,
            f"{c.batch:,}",
            f"{c.rows:,}",
            f"{c.seconds:.2f}",
            f"{c.rate:,.0f}",
            f"{_ms(c.round_ms(50))} / {_ms(c.round_ms(99))} / {_ms(max(c.rounds_ms))}",
        )
        for c in ceiling
    ]
    return header, rows


def wait_rows(runs: Mapping[str, RunResult], top: int = 8) -> tuple[tuple[str, ...], Rows]:
    """Return what the writer's PostgreSQL backends were doing, as shares of the samples, per run."""
    names = list(runs)
    order: Counter[str] = Counter()
    for r in runs.values():
        order.update(r.pg_waits)
    rows: Rows = []
    for event, _ in order.most_common(top):
        shares = []
        for n in names:
            total = sum(runs[n].pg_waits.values())
            shares.append(f"{runs[n].pg_waits[event] / total:.0%}" if total else "-")
        rows.append((event, *shares))
    samples = tuple(f"{name} ({sum(runs[name].pg_waits.values()):,} backend samples)" for name in names)
    return ("backend state / wait event", *samples), rows


def _title(name: str, p: Profile) -> str:
    return f"{name} ({p.tool}, {p.samples:,} samples)"


def component_rows(profiles: Mapping[str, Profile]) -> tuple[tuple[str, ...], Rows]:
    names = list(profiles)
    order: Counter[str] = Counter()
    for p in profiles.values():
        for comp, share in p.components:
            order[comp] = max(order[comp], int(share * 1e6))
    rows: Rows = []
    for comp, _ in order.most_common():
        shares = [dict(profiles[n].components).get(comp, 0.0) for n in names]
        rows.append((comp, *(f"{s:.1%}" for s in shares)))
    return ("component (self time)", *(_title(n, profiles[n]) for n in names)), rows


def marker_rows(profiles: Mapping[str, Profile]) -> tuple[tuple[str, ...], Rows]:
    names = list(profiles)
    labels: list[str] = []
    for p in profiles.values():
        labels += [label for label, _ in p.markers if label not in labels]
    rows: Rows = [(label, *(f"{dict(profiles[n].markers).get(label, 0.0):.1%}" for n in names)) for label in labels]
    return ("passing through (inclusive)", *(_title(n, profiles[n]) for n in names)), rows


def top_rows(profiles: Mapping[str, Profile], top: int = 10) -> tuple[tuple[str, ...], Rows]:
    rows: Rows = []
    for name, p in profiles.items():
        rows += [(name, func, f"{share:.1%}") for func, share in p.top[:top]]
    return ("profile", "function (file)", "self time"), rows


def _profile_paragraph(key: str, p: Profile, r: RunResult) -> str:
    """Describe one profile: the run, then its components by share of the process's CPU."""
    components = ", ".join(f"{name} {share:.0%}" for name, share in p.components if share >= 0.02)
    markers = dict(p.markers)
    through = "; ".join(f"{label} {share:.0%}" for label, share in markers.items() if share >= 0.05)
    return (
        f"**{key}** ({p.tool}, {p.samples:,} samples; the rata process at {r.cpu['rata']:.0f}% of one core, "
        f"committing {r.committed_rate:,.0f} of {r.offered_rate:,.0f} ticks/s while profiled; PostgreSQL at "
        f"{r.cpu['postgres']:.0f}%): {components}." + (f" Inclusive: {through}." if through else "")
    )


def where_the_time_goes(m: Measured, profiles: Mapping[str, Profile]) -> str:
    parts = []
    for key in ("end to end 5,000", "end to end 50,000", "synthetic unpaced"):
        p, r = profiles.get(key), m.profiles.get(key)
        if p is not None and r is not None:
            parts.append(_profile_paragraph(key, p, r))
    parts.append(_postgres_paragraph(m))
    ceiling = best_ceiling(m.ceiling)
    high = max(m.ccxt)
    best = pipeline_best(m)
    feed_best = max(c.committed_rate for c in m.client.values())
    e2e = m.ccxt[high]
    watch = max(m.watch.values(), key=lambda r: r.committed_rate) if m.watch else None
    text = (
        f"So: the feed alone delivers up to {feed_best:,.0f} ticks/s, the pipeline alone commits up to "
        f"{best.committed_rate:,.0f} ticks/s ({best.committed_rate / ceiling.rate:.0%} of raw COPY's "
        f"{ceiling.rate:,.0f} rows/s), and end to end at {high:,}/s offered {e2e.committed_rate:,.0f}/s were "
        f"committed with rata at {e2e.cpu['rata']:.0f}%, the server at {e2e.cpu['server']:.0f}% and PostgreSQL at "
        f"{e2e.cpu['postgres']:.0f}% of a core, on two cores shared by all three."
    )
    if watch is not None:
        text += (
            f" Through ccxt's own `watch_trades` the feed alone delivered {watch.committed_rate:,.0f} of "
            f"{watch.offered_rate:,.0f} ticks/s offered at {watch.cpu['rata']:.0f}% of a core."
        )
    parts.append(text + _starvation(m))
    return "\n\n".join(parts)


def _share(r: RunResult, key: str) -> float:
    total = sum(r.pg_waits.values())
    return r.pg_waits[key] / total if total else 0.0


def _top_wait(r: RunResult) -> tuple[str, float]:
    """Return the most frequent wait event (not CPU, not idle in transaction) and its share."""
    for key, _ in r.pg_waits.most_common():
        if ":" in key and not key.startswith("CPU"):
            return key, _share(r, key)
    return "-", 0.0


def _postgres_paragraph(m: Measured) -> str:
    low = min(m.synthetic)
    r, e2e = m.synthetic[low], m.ccxt[low]
    event, share = _top_wait(r)
    small = [c for c in m.ceiling if c.batch == SMALL_BATCH]
    writer = next((c for c in small if c.name.startswith(WRITER)), None)
    staged = next((c for c in small if c.name.startswith(STAGED)), None)
    text = (
        f"**PostgreSQL side** (pg_stat_activity sampled every 20 ms, the writer's backends only): at {low:,} ticks/s "
        f"from SyntheticFeed they were busy on CPU in {_share(r, 'CPU (active, no wait event)'):.0%} of the samples, "
        f"'idle in transaction' in {_share(r, 'idle in transaction'):.0%} (each batch is now one statement, its own "
        f"transaction: ticks and bars together, one round trip), and the most frequent wait was `{event}` "
        f"({share:.0%}). End to end at {low:,} ticks/s: CPU {_share(e2e, 'CPU (active, no wait event)'):.0%}, "
        f"`IO:WALSync` {_share(e2e, 'IO:WALSync'):.0%}."
    )
    if writer is not None and staged is not None:
        text += (
            f" Per commit with {SMALL_BATCH}-row batches, the writer's statement took p50 {_ms(writer.round_ms(50))} "
            f"/ p99 {_ms(writer.round_ms(99))} / max {_ms(max(writer.rounds_ms))} ms; the previous writer (COPY into "
            f"a temp staging table `ON COMMIT DELETE ROWS`, whose file every commit truncates, then INSERT ON "
            f"CONFLICT) p50 {_ms(staged.round_ms(50))} / p99 {_ms(staged.round_ms(99))} / max "
            f"{_ms(max(staged.rounds_ms))} ms."
        )
    return text


def _starvation(m: Measured) -> str:
    """Say so when the pipeline behind ccxt commits far less than ccxt alone delivers (the loop is starved)."""
    starved = [rate for rate in sorted(m.ccxt) if m.ccxt[rate].committed_rate < 0.5 * m.client[rate].committed_rate]
    if not starved:
        return ""
    rate = starved[0]
    return (
        f" Past the feed's capacity the pipeline behind it collapses: at {rate:,}/s the feed alone still delivers "
        f"{m.client[rate].committed_rate:,.0f} ticks/s, but end to end only {m.ccxt[rate].committed_rate:,.0f} are "
        f"committed a second."
    )


def notes(m: Measured, log_counts: Counter[str], disturbed_pct: float) -> list[str]:
    lines = [
        "Send time: the server stamps each frame with `sentNs` (time.time_ns(), taken once per 1 ms pacing step "
        "before the step's frames are built and written, so latencies are overstated by at most that build time, "
        "about 0.1 ms at 50,000/s); `E` and `T` carry the same instant in ms. `SentNsVenue` (a BinanceVenue whose "
        "`event_sent_ns` reads `sentNs`) puts it into each trade's send time, and the writer's tick latency runs "
        "from there to the commit. Binance's `E` alone is whole milliseconds (0-1 ms too late).",
        "Server and client share this machine's clock (same host, CLOCK_REALTIME); the server is a separate "
        "process, so it does not take the event loop of the process under test, but it does take CPU: this "
        "machine has 2 cores for the server, rata and PostgreSQL together.",
        "The direct stream opens one websocket per 200 symbols (3 here) and subscribes each connection's symbols "
        "in one SUBSCRIBE; ccxt's `watch_trades` (the comparison runs) opens one per 10 symbols "
        "(`streamLimits.spot` = 50 streams, its default) and `CcxtFeed` runs one loop per symbol (500 loops).",
        "SyntheticFeed ticks carry no send time; their latency runs from emission (`recv_ns`) to commit. The "
        "unpaced run emits as fast as the pipeline takes ticks, so its queues are full by design and its latency "
        "is queueing, not a target.",
        "CPU: user + system seconds over the measured window from /proc (psutil), in % of one core; PostgreSQL = "
        "postmaster + every backend and helper; 'other processes' = the machine's busy time minus those. A run "
        f"where other processes used more than {disturbed_pct:.0f}% of a core is repeated (the calmest attempt "
        "is kept and labelled with its attempt number and, if still disturbed, [disturbed]).",
        "Ceiling: prepared rows, batches of 5,000, each write its own transaction; pipeline throughput includes "
        "building the columns, validating, aggregating bars (500 instruments x 1s..1d) and writing bars as well.",
    ]
    if m.calm_waits:
        lines.append("Waits for a quiet machine: " + "; ".join(m.calm_waits) + ".")
    runs = [*m.ccxt.values(), *m.synthetic.values(), *m.client.values(), *m.watch.values(), m.unpaced]
    feed_notes = [f"{_label(r)}: {r.feed_notes}" for r in runs if r.feed_notes]
    if feed_notes:
        lines.append("Source counters: " + "; ".join(feed_notes) + ".")
    commits = [f"{_label(r)}: {r.batches_note}" for r in (*m.ccxt.values(), *m.synthetic.values()) if r.batches_note]
    lines.append("Writer commit latency (ticks + bars, per batch): " + "; ".join(commits) + ".")
    backlog = [
        f"{_label(r)}: {r.server_buffer / 2**20:,.1f} MiB"
        for r in (*m.ccxt.values(), *m.client.values(), *m.watch.values())
        if r.server_buffer > 2**20
    ]
    if backlog:
        lines.append(
            "Server-side send buffer (bytes written by the server that the kernel could not yet take, deepest "
            "connection): " + "; ".join(backlog) + "."
        )
    others = [f"{_label(r)}: {', '.join(r.busiest_others)}" for r in runs if r.cpu["others"] > disturbed_pct]
    if others:
        lines.append("Busiest other processes in disturbed runs: " + "; ".join(others) + ".")
    rejected = [f"{_label(r)}: {r.rejected:,}" for r in runs if r.rejected]
    lines.append("Rejected by the normaliser: " + ("; ".join(rejected) if rejected else "none in any run") + ".")
    if log_counts:
        lines.append(
            "Log records during the runs (counted, not printed): "
            + ", ".join(f"{k}: {v:,}" for k, v in sorted(log_counts.items()))
            + "."
        )
    return lines
