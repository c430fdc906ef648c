"""The alarm engine: limit rules evaluated over batches of samples by a numba kernel.

One ``Engine.feed`` call per poll cycle (or one for a whole backtest) evaluates every
rule of docs/ARCHITECTURE.md "Limit rules" over an interleaved batch and returns the
transitions with their onsets. Rules are grouped by point in CSR arrays so that the
per-feed Python cost does not grow with the number of rules: a 2 000-point live cycle is
a handful of array checks and one kernel call. State lives in packed arrays between
calls, so one batch or any split of it gives identical transitions, and it is saved and
restored by rule key (``<point id>:<limit>``) rather than by array position.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from alarms import kernels as K
from alarms.arrays import BOOL, F64, FLOAT, INT, check_1d, check_same_length

TRANSITION_DTYPE = np.dtype(
    [("rule", np.int64), ("sample", np.int64), ("event", np.int8), ("onset", np.float64)]
)
"""One transition: rule index, sample index in the batch, +1 raise / -1 clear, onset (s)."""


@dataclass(frozen=True)
class Rule:
    """One limit of one point, with docs/ARCHITECTURE.md "Limit rules" parameters.

    ``point`` is the integer the caller uses for that point in ``Engine.feed``; ``kind``
    is "high" (beyond = v > L) or "low" (beyond = v < L).
    """

    point: int
    kind: str
    limit: float
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    m_of_n: tuple[int, int] | None = None
    max_gap_s: float = math.inf

    def __post_init__(self) -> None:
        where = f"Rule(point={self.point}, kind={self.kind!r}, limit={self.limit!r})"
        if not isinstance(self.point, (int, np.integer)) or self.point < 0:
            raise ValueError(f"{where}: point must be an integer >= 0")
        if self.kind not in ("high", "low"):
            raise ValueError(f"{where}: kind must be 'high' or 'low'")
        if not math.isfinite(self.limit):
            raise ValueError(f"{where}: limit must be a finite number")
        for name in ("deadband", "on_delay_s", "off_delay_s"):
            val = getattr(self, name)
            if not (math.isfinite(val) and val >= 0):
                raise ValueError(f"{where}: {name}={val!r} must be finite and >= 0")
        if not (self.max_gap_s >= 0):  # inf allowed: no gap ever breaks a run
            raise ValueError(f"{where}: max_gap_s={self.max_gap_s!r} must be >= 0")
        if self.m_of_n is not None:
            mn = tuple(int(x) for x in self.m_of_n)
            if len(mn) != 2 or not 1 <= mn[0] <= mn[1]:
                raise ValueError(f"{where}: m_of_n={self.m_of_n!r} must be [M, N], 1 <= M <= N")
            if self.on_delay_s > 0:
                raise ValueError(f"{where}: m_of_n cannot be combined with on_delay_s > 0")
            object.__setattr__(self, "m_of_n", mn)

    def signature(self) -> str:
        """Everything that shapes the rule's runs; a change restarts them on load_state."""
        return (f"{self.kind}|{self.limit!r}|{self.deadband!r}|{self.on_delay_s!r}|"
                f"{self.off_delay_s!r}|{self.m_of_n}|{self.max_gap_s!r}")


class Engine:
    """Evaluates a fixed list of rules over batches, carrying state between batches."""

    def __init__(self, rules: Sequence[Rule], keys: Sequence[str] | None = None) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        n = len(self.rules)
        for i, r in enumerate(self.rules):
            if not isinstance(r, Rule):
                raise TypeError(f"rules[{i}] is {type(r).__name__}, expected alarms.engine.Rule")
        if keys is None:
            keys = [f"{r.point}:{i}" for i, r in enumerate(self.rules)]
        self.keys: tuple[str, ...] = tuple(keys)
        if len(self.keys) != n:
            raise ValueError(f"got {n} rules but {len(self.keys)} keys; give one key per rule")
        if len(set(self.keys)) != n:
            dup = sorted(k for k, c in Counter(self.keys).items() if c > 1)
            raise ValueError(f"rule keys must be unique, repeated: {', '.join(dup)}")
        self._index = {k: i for i, k in enumerate(self.keys)}
        # CSR: the rules of point p are rule_idx[rule_ptr[p]:rule_ptr[p+1]], ascending.
        points = np.array([r.point for r in self.rules], dtype=np.int64)
        n_points = int(points.max()) + 1 if n else 0
        order = np.argsort(points, kind="stable")
        self._rule_idx = order.astype(np.int64)
        self._rule_ptr = np.zeros(n_points + 1, dtype=np.int64)
        per_point = np.bincount(points, minlength=n_points)
        np.cumsum(per_point, out=self._rule_ptr[1:])
        self._max_rules_per_point = int(per_point.max()) if n else 0
        # Per-rule arrays are stored in CSR order (row j is rule rule_idx[j]); _pos maps a
        # caller's rule index to its row.
        self._pos = np.empty(n, dtype=np.int64)
        self._pos[order] = np.arange(n)
        params = np.zeros((n, K.N_PARAMS), dtype=np.float64)
        win_sizes = np.zeros(n, dtype=np.int64)  # N
        ring_sizes = np.zeros(n, dtype=np.int64)  # M: only the last M beyond samples count
        for i, r in enumerate(self.rules):
            m, nn = r.m_of_n if r.m_of_n else (0, 0)
            s = 1.0 if r.kind == "high" else -1.0
            params[i] = (s, s * r.limit, s * r.limit - r.deadband, r.on_delay_s,
                         r.off_delay_s, m, r.max_gap_s)
            win_sizes[i] = nn
            ring_sizes[i] = m
        self._params = np.ascontiguousarray(params[order])
        ring_sizes = ring_sizes[order]
        self._wpar = np.zeros((n, 3), dtype=np.int64)  # ring buffer offset, N, M
        self._wpar[:, K.WP_N] = win_sizes[order]
        self._wpar[:, K.WP_M] = ring_sizes
        if n:
            self._wpar[1:, K.WP_OFF] = np.cumsum(ring_sizes)[:-1]
        total = int(ring_sizes.sum())
        self._win_ts = np.zeros(total, dtype=np.float64)  # time of a beyond sample
        self._win_idx = np.zeros(total, dtype=np.float64)  # its number (ST_COUNT)
        self._state = np.zeros((n, K.N_STATE), dtype=np.float64)
        # Per point, one cache line: the steady set of its rules and the time of its
        # previous evaluated sample (kernels.ST_*). Duplicates, late samples and gaps are per
        # point (docs/ARCHITECTURE.md "Limit rules"), so that time is kept once per point.
        self._pst = np.zeros((n_points, K.N_STEADY), dtype=np.float64)
        self._plast = self._pst[:, K.ST_LAST]  # a view
        self._point_of = points
        self._wst = np.zeros((n, 2), dtype=np.int64)  # ring head, stored beyond entries
        self._signatures = [r.signature() for r in self.rules]
        self.reset()

    def reset(self) -> None:
        """Forget all state: every rule inactive, no runs, no previous sample."""
        self._state[:] = 0.0
        self._plast[:] = -np.inf
        self._pst[:, K.ST_COUNT] = 0.0
        self._state[:, K.S_RUN_T0] = np.nan
        self._state[:, K.S_CLR_C0] = np.nan
        self._wst[:] = 0
        K._steady_all(self._rule_ptr, self._params, self._state, self._wst, self._pst)

    @property
    def active(self) -> np.ndarray:
        """Whether each rule is active now (a copy, one bool per rule)."""
        return self._state[self._pos, K.S_ACTIVE] != 0.0

    def feed(self, point: np.ndarray, ts: np.ndarray, value: np.ndarray,
             good: np.ndarray) -> np.ndarray:
        """Evaluate one batch; return transitions (TRANSITION_DTYPE) by sample, then rule.

        ``point`` int32/int64 point numbers (as in ``Rule.point``; others are ignored),
        ``ts`` float64 Unix seconds, ``value`` float64/float32, ``good`` bool; 1-D, one
        length. Within a point, samples are in arrival order; points may interleave.
        """
        point = check_1d("point", point, INT, "i")
        ts = check_1d("ts", ts, F64, "f")
        value = check_1d("value", value, FLOAT, "f")
        good = check_1d("good", good, BOOL, "b")
        check_same_length(point=point, ts=ts, value=value, good=good)
        n = point.shape[0]
        cap = max(256, n // 64, 2 * self._max_rules_per_point)
        chunks, start = [], 0
        while True:
            cols = (np.empty(cap, np.int64), np.empty(cap, np.int64),
                    np.empty(cap, np.int8), np.empty(cap, np.float64))
            begun = start
            k, start = K._scan_limits(
                point, ts, value, good, self._rule_ptr, self._rule_idx, self._params,
                self._wpar, self._pst, self._state, self._wst, self._win_ts,
                self._win_idx, start, *cols)
            out = np.empty(k, dtype=TRANSITION_DTYPE)
            for name, col in zip(TRANSITION_DTYPE.names, cols):
                out[name] = col[:k]
            chunks.append(out)
            if start >= n:
                break
            # Resume before the sample that did not fit, with room for the rest at the rate
            # seen so far (a flood can raise and clear on several % of its samples).
            rate = k / max(start - begun, 1)
            cap = max(2 * cap, int(1.25 * rate * (n - start)) + 2 * self._max_rules_per_point)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    # -- state by key ---------------------------------------------------------------

    def state_snapshot(self) -> "EngineState":
        """The state of every rule as of now, copied out of the engine in well under a
        millisecond; it turns into ``state_dict``'s entries only when read.

        The service saves engine state with the store every few cycles; taking the snapshot on
        the event loop and reading it on the writer thread keeps the per-rule dict building
        (130-230 ms at 40 000 rules on the 2-core machine) off the loop (docs/ARCHITECTURE.md
        "Engine"). The result is a read-only mapping key -> entry, so
        ``Cycle(engine_state=...)`` takes it as it is.
        """
        return EngineState(self)

    def state_dict(self) -> dict[str, dict]:
        """JSON-ready state of every rule, keyed by rule key (not by position)."""
        return dict(self.state_snapshot().items())

    def load_state(self, d: dict[str, dict]) -> None:
        """Restore state saved by ``state_dict``, matching rules by key.

        Rules missing from ``d`` start fresh and keys of removed rules are ignored. A rule
        whose parameters changed keeps its active flag (and the point's last sample time,
        for duplicate detection) but restarts its runs (docs/ARCHITECTURE.md "Limit rules").
        """
        self.reset()
        for key, entry in d.items():
            i = self._index.get(key)
            if i is None:
                continue
            j = int(self._pos[i])
            try:
                st = self._state[j]
                st[K.S_ACTIVE] = 1.0 if entry["active"] else 0.0
                last = entry["last_ts"]
                p = self._point_of[i]
                if last is not None:
                    self._plast[p] = max(self._plast[p], float(last))
                if entry["params"] != self.rules[i].signature():
                    continue  # changed: runs restart, active flag kept
                for col, name in ((K.S_RUN_T0, "run_t0"), (K.S_CLR_C0, "clear_c0")):
                    st[col] = np.nan if entry[name] is None else float(entry[name])
                nn = int(self._wpar[j, K.WP_N])
                window = entry["window"]
                if len(window) > nn:
                    raise ValueError(f"engine state for {key!r} has {len(window)} window "
                                     f"entries, more than N={nn}; discard it")
                # (time, samples ago) of the window's beyond samples, oldest first: saved as
                # "beyond" since the ring keeps only those; a state saved before that has the
                # whole window as [[ts, beyond], ...], oldest first.
                if "beyond" in entry:
                    pairs = [(float(wt), int(ago)) for wt, ago in entry["beyond"]]
                else:
                    pairs = [(float(wt), len(window) - 1 - q)
                             for q, (wt, wb) in enumerate(window) if wb]
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"engine state for {key!r} is malformed ({exc!r}); "
                                 "discard it to start the rule fresh") from None
            if pairs and nn == 0:
                raise ValueError(f"engine state for {key!r} has a window but the rule has "
                                 "no m_of_n; discard it")
            mm = int(self._wpar[j, K.WP_M])
            pairs = sorted((x for x in pairs if 0 <= x[1] < nn), key=lambda x: -x[1])[-mm:]
            base = int(self._wpar[j, K.WP_OFF])
            for q, (wt, ago) in enumerate(pairs):
                self._win_ts[base + q] = wt
                self._win_idx[base + q] = -ago  # the point's sample count restarts at 0
            self._wst[j] = (len(pairs) % mm if mm else 0, len(pairs))
        K._steady_all(self._rule_ptr, self._params, self._state, self._wst, self._pst)


def rules_by_key(items: Iterable[tuple[str, Rule]]) -> Engine:
    """Build an Engine from (key, rule) pairs, e.g. ("MEC-PC-01.pc_0_5um:action_high", r)."""
    pairs = list(items)
    return Engine([r for _, r in pairs], keys=[k for k, _ in pairs])


def warm_up() -> None:
    """Compile (or load from the cache) every kernel before the scheduler starts.

    The service calls this before polling so the first cycle never waits for numba
    (docs/ARCHITECTURE.md "Data flow"); it runs the kernels on tiny inputs with the dtypes the
    wrappers pass.
    """
    f8 = np.array([0.0, 1.0, 2.0])
    g = np.ones(3, dtype=bool)
    for p_dtype in (np.int64, np.int32):
        for v_dtype in (np.float64, np.float32):
            eng = Engine([Rule(0, "high", 0.5), Rule(0, "low", 0.5, m_of_n=(1, 2))])
            eng.feed(np.zeros(3, dtype=p_dtype), f8, f8.astype(v_dtype), g)
    from alarms import cascade, exposure, stale  # noqa: F401  (same floor, small modules)

    exposure.ExposureTracker(900.0, 2.0).feed(f8, f8, g)
    cascade.Cascade(2.0).feed(f8, f8, np.zeros(3, np.int8), f8, f8, np.zeros(3, np.int8))
    st = stale.StaleTracker(np.array([3.0]))
    st.feed(np.zeros(3, dtype=np.int64), f8, f8, g)
    st.check(10.0)
    stale.RateOfChange(1).feed(np.zeros(3, dtype=np.int64), f8, f8, g)


def _opt_list(a: np.ndarray) -> list:
    """Floats as a list, None where not finite (JSON has no NaN or infinity)."""
    return [x if x - x == 0.0 else None for x in a.tolist()]


class EngineState(Mapping):
    """A frozen copy of an engine's state, read as ``Engine.state_dict`` entries by key.

    The copy is a few arrays (one row per rule, one per point, the M-of-N ring buffers);
    entries are built on first read, all at once and vectorised. The entry format is the one
    ``Engine.load_state`` reads (active, last_ts, run_t0, clear_c0, window, beyond, params):
    "beyond" lists the M-of-N window's beyond samples as [[ts, samples ago], ...], and
    "window" (the whole window as [[ts, beyond], ...], what states saved before had) is
    left empty, so an older engine given this state starts that window afresh.
    """

    def __init__(self, engine: Engine) -> None:
        pos = engine._pos
        self._keys = engine.keys
        self._index = engine._index
        self._signatures = engine._signatures
        self._active = engine._state[pos, K.S_ACTIVE] != 0.0
        self._last = engine._plast[engine._point_of]
        self._run_t0 = engine._state[pos, K.S_RUN_T0]
        self._clear_c0 = engine._state[pos, K.S_CLR_C0]
        wlen = engine._wst[pos, K.W_LEN]
        busy = np.flatnonzero(wlen > 0)  # rules with beyond entries in their ring
        # Per such rule: N, M, head, stored entries, offset, the point's sample count; the
        # ring buffers are copied whole.
        self._busy = busy
        rows = pos[busy]
        self._wmeta = np.stack([engine._wpar[rows, K.WP_N], engine._wpar[rows, K.WP_M],
                                engine._wst[rows, K.W_HEAD], wlen[busy],
                                engine._wpar[rows, K.WP_OFF]], axis=1)
        self._count = engine._pst[engine._point_of[busy], K.ST_COUNT]
        self._win_ts = engine._win_ts.copy()
        self._win_idx = engine._win_idx.copy()
        self._entries: dict[str, dict] | None = None

    def _windows(self) -> dict[int, list]:
        """Rule index -> the beyond samples of its window, oldest first, as
        [[ts, samples ago], ...] (0: the point's newest evaluated sample)."""
        out = {}
        for i, (nn, mm, head, wlen, base), count in zip(
                self._busy.tolist(), self._wmeta.tolist(), self._count.tolist()):
            pos = range(wlen) if wlen < mm else [(head + q) % mm for q in range(mm)]
            pairs = [[float(self._win_ts[base + q]), int(count - self._win_idx[base + q])]
                     for q in pos]
            pairs = [pr for pr in pairs if pr[1] < nn]  # older ones left the window
            if pairs:
                out[i] = pairs
        return out

    def _build(self) -> dict[str, dict]:
        if self._entries is None:
            windows = self._windows()
            self._entries = {
                key: {"active": act, "last_ts": last, "run_t0": t0, "clear_c0": c0,
                      "window": [], "beyond": windows.get(i, []), "params": sig}
                for i, (key, act, last, t0, c0, sig) in enumerate(zip(
                    self._keys, self._active.tolist(), _opt_list(self._last),
                    _opt_list(self._run_t0), _opt_list(self._clear_c0), self._signatures))}
        return self._entries

    def __getitem__(self, key: str) -> dict:
        return self._build()[key]

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def items(self):
        return self._build().items()
