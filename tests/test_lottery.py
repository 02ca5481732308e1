"""The gap experiment's certified core (pruning_limits.lottery, THEORY §7) against oracles.

Oracles: dense sampling of the circle with bounded golden-section refinement (exact sup error),
brute force over all subsets (subset sums, MILP widths), an independent Farkas check written
here, and HiGHS's own verdict on the primal LP.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from pruning_limits import lottery as L
from pruning_limits._checks import PruningLimitsError

from conftest import one_line


def circle(theta):
    theta = np.asarray(theta, dtype=np.float64)
    return np.stack([np.cos(theta), np.sin(theta)], axis=-1)


def error_at(theta, w, first, second, model):
    x = circle(np.atleast_1d(theta))
    return np.abs(L.target(x, w) - L.network(x, first, second, model))


def sampled_sup(w, first, second, model, samples=200_001):
    """Dense sampling plus golden-section refinement around the 20 best samples (independent of the breakpoints)."""
    theta = np.linspace(0.0, 2 * np.pi, samples)
    vals = error_at(theta, w, first, second, model)
    best = float(vals.max())
    step = theta[1] - theta[0]
    for k in np.argsort(-vals)[:20]:
        best = max(best, golden_max(lambda t: float(error_at(t, w, first, second, model)[0]), theta[k] - step, theta[k] + step))
    return best, float(vals.max()), step


def golden_max(func, a, b, iterations=120):
    """Golden-section search for the maximum of a unimodal function on [a, b] (corners included)."""
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = func(c), func(d)
    for _ in range(iterations):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = func(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = func(d)
    return max(fc, fd, func(a), func(b))


def lipschitz(w, first, second):
    return float(np.linalg.norm(w) + np.sum(np.abs(second) * np.linalg.norm(first, axis=1)))


def independent_farkas_margin(points, y_up, y_lo, w, first, second, eps, model):
    """The Farkas margin recomputed here from the definition, row by row."""
    n = first.shape[0]
    combo = np.zeros(n)
    rhs = 0.0
    for x, a, b in zip(np.atleast_2d(points), y_up, y_lo):
        assert a >= 0 and b >= 0
        r = float(np.linalg.norm(x))
        t = float(np.dot(w, x))
        row = np.array([second[i] * max(float(np.dot(first[i], x)), 0.0) for i in range(n)])
        combo += a * row
        rhs += a * (max(t, 0.0) + eps * r)
        if b > 0:
            lower = t - eps * r if model == "R" else max(t, 0.0) - eps * r
            if model == "R":
                assert t > eps * r
            combo -= b * row
            rhs -= b * lower
    # for s in [0,1]^n: combo . s >= sum(min(combo, 0)); the rows force combo . s <= rhs
    return rhs - float(np.sum(np.minimum(combo, 0.0)))


# ----------------------------------------------------------------------------- stream


def test_stream_is_nested_and_seeded():
    small = L.make_stream(3, 7, 10)
    big = L.make_stream(3, 7, 50)
    np.testing.assert_array_equal(small.first, big.first[:10])
    np.testing.assert_array_equal(small.second, big.second[:10])
    np.testing.assert_array_equal(small.w, big.w)
    assert abs(np.linalg.norm(big.w) - 1) < 1e-15
    assert np.all(np.abs(big.second) <= 1)
    other = L.make_stream(3, 8, 10)
    assert not np.array_equal(other.first, small.first)


# ----------------------------------------------------------------------------- sup error


@pytest.mark.parametrize("model", ["R", "L"])
@pytest.mark.parametrize("case", range(6))
def test_exact_sup_error_matches_dense_sampling(model, case):
    rng = np.random.default_rng(100 + case)
    n = int(rng.integers(1, 25))
    w = rng.standard_normal(2)
    w /= np.linalg.norm(w)
    first = rng.standard_normal((n, 2))
    second = rng.uniform(-1, 1, n)
    if case % 2:  # weight-pruned-looking networks: some single-input rows, some pruned neurons
        first[rng.random((n, 2)) < 0.4] = 0.0
        second[rng.random(n) < 0.2] = 0.0
    exact = L.sup_error_exact(w, first, second, model)
    refined, raw, step = sampled_sup(w, first, second, model)
    assert raw <= exact.value + 1e-12
    assert exact.value - raw <= lipschitz(w, first, second) * step  # sampling can only miss this much
    assert abs(refined - exact.value) <= 1e-9
    assert abs(np.linalg.norm(exact.point) - 1) < 1e-12
    at_point = float(np.abs(L.target(exact.point, w) - L.network(exact.point, first, second, model))[0])
    assert abs(at_point - exact.value) <= 1e-12


def test_exact_sup_error_closed_forms():
    w = np.array([1.0, 0.0])
    # g = 0: the error is the target's sup, 1
    assert abs(L.sup_error_exact(w, np.zeros((0, 2)), np.zeros(0)).value - 1.0) < 1e-15
    # g = f exactly: one neuron u = w, v = 1
    assert L.sup_error_exact(w, w[None, :], np.array([1.0])).value < 1e-15
    # g = f / 2: error 1/2 at x = w
    assert abs(L.sup_error_exact(w, w[None, :], np.array([0.5])).value - 0.5) < 1e-15
    # d = 1: the two points ±1
    assert abs(L.sup_error_exact(np.array([1.0]), np.array([[0.5], [-2.0]]), np.array([1.0, 1.0])).value - 2.0) < 1e-15
    assert abs(L.sup_error_exact(np.array([1.0]), np.array([[0.5], [-2.0]]), np.array([1.0, 1.0]), "R").value - 2.0) < 1e-15
    assert abs(L.sup_error_exact(np.array([-1.0]), np.array([[0.5]]), np.array([1.0])).value - 1.0) < 1e-15


def test_exact_sup_error_refuses_higher_dimensions():
    with pytest.raises(PruningLimitsError, match=r"^the exact sup error needs d = 1 or 2, got d = 3; use certified_error$") as info:
        L.sup_error_exact(np.ones(3) / math.sqrt(3), np.ones((2, 3)), np.ones(2))
    one_line(info)
    with pytest.raises(PruningLimitsError, match=(
        r"^expected first-layer rows of length d = 2 and one second-layer weight per row, got shapes \(2, 3\) and \(2,\)$"
    )) as info:
        L.sup_error_exact(np.ones(2), np.ones((2, 3)), np.ones(2))
    one_line(info)


@pytest.mark.parametrize("dim", [2, 3, 4])
def test_separable_bound_is_a_bound(dim):
    rng = np.random.default_rng(dim)
    for _ in range(5):
        n = 12
        first = np.zeros((n, dim))
        first[np.arange(n), rng.integers(0, dim, n)] = rng.standard_normal(n)
        second = rng.uniform(-1, 1, n)
        w = rng.standard_normal(dim)
        w /= np.linalg.norm(w)
        bound = L.separable_error_bound(w, first, second)
        pts = rng.standard_normal((200_000, dim))
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        sampled = np.max(np.abs(L.target(pts, w) - L.network(pts, first, second, "R")))
        assert sampled <= bound + 1e-12
        inner = np.max(np.abs(pts @ w - L.network(pts, first, second, "L")))
        assert inner <= bound + 1e-12 and bound - inner < 0.1  # the bound is the pre-activation sup
        if dim == 2:
            assert L.sup_error_exact(w, first, second).value <= bound + 1e-12
    assert L.separable_error_bound(np.ones(2) / math.sqrt(2), np.ones((1, 2)), np.ones(1)) is None


def test_grid_lipschitz_bound_covers_dense_samples():
    rng = np.random.default_rng(5)
    w = rng.standard_normal(3)
    w /= np.linalg.norm(w)
    first, second = rng.standard_normal((6, 3)), rng.uniform(-1, 1, 6)
    bound, kind = L.certified_error(w, first, second, "R", grid_per_axis=17)
    assert kind.startswith("grid+lipschitz")
    pts = rng.standard_normal((50_000, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    assert np.max(np.abs(L.target(pts, w) - L.network(pts, first, second, "R"))) <= bound
    pts, delta = L.cube_grid(3, 17)
    probe = rng.standard_normal((4_000, 3))
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    nearest = np.min(np.linalg.norm(probe[:, None, :] - pts[None, :, :], axis=2), axis=1)
    assert nearest.max() <= delta


# ----------------------------------------------------------------------------- weight pruning


def test_closest_subset_sum_matches_brute_force():
    rng = np.random.default_rng(1)
    for k in range(0, 13):
        values = rng.uniform(-1, 1, k)
        goal = float(rng.uniform(-1, 1))
        total, mask = L.closest_subset_sum(values, goal)
        brute = min(abs(goal - sum(c)) for r in range(k + 1) for c in itertools.combinations(values, r))
        assert abs(abs(goal - total) - brute) < 1e-12
        assert abs(total - values[mask].sum()) < 1e-12


def independent_weight_error(stream, cert, eps):
    """The certificate's masked network evaluated here: refined sampling (d <= 2) or the closed form (d > 2)."""
    n, d = cert.width, stream.dim
    first = stream.first[:n] * cert.first_mask
    second = stream.second[:n] * cert.second_mask
    if d == 1:
        x = np.array([[1.0], [-1.0]])
        return float(np.max(np.abs(L.target(x, stream.w) - L.network(x, first, second, "R"))))
    if d == 2:
        return sampled_sup(stream.w, first, second, "R")[0]
    P, Q = np.zeros(d), np.zeros(d)
    for i in range(n):
        nz = np.flatnonzero(first[i])
        assert len(nz) <= 1  # the construction keeps one input weight per neuron
        if len(nz) and second[i] != 0:
            j = nz[0]
            if first[i, j] > 0:
                P[j] += second[i] * first[i, j]
            else:
                Q[j] -= second[i] * first[i, j]
    plus = np.sqrt(sum(max(0.0, stream.w[j] - P[j], -(stream.w[j] + Q[j])) ** 2 for j in range(d)))
    minus = np.sqrt(sum(max(0.0, P[j] - stream.w[j], stream.w[j] + Q[j]) ** 2 for j in range(d)))
    return float(max(plus, minus))


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_weight_certificates_reevaluated_independently(dim):
    """Each weight certificate's error, recomputed here, matches within 1e-9.

    Independent in d <= 2 (the two points ±1; refined dense sampling of the circle). In d > 2 the
    re-evaluation is the same closed form as :func:`separable_error_bound` written again, which
    catches slips in either transcription but not an error in the formula itself; the formula
    is checked against dense sampling by ``test_separable_bound_is_a_bound``.
    """
    for seed in range(2):
        stream = L.make_stream(dim, seed, 1024)
        widths = []
        for k in (2, 5, 8, 11):
            eps = 2.0**-k
            cert = L.weight_pruning_width(stream, eps)
            again = independent_weight_error(stream, cert, eps)
            assert abs(again - cert.error) <= 1e-9
            assert cert.error <= eps and cert.construction_bound <= eps
            assert cert.error <= cert.construction_bound + 1e-12
            # minimal for the construction: one neuron fewer fails its own bound
            assert L.subset_sum_construction(stream, cert.width - 1)[2] > eps
            widths.append(cert.width)
        assert widths == sorted(widths)


# ----------------------------------------------------------------------------- neuron pruning: LP


def test_lp_rows_hold_for_every_subset():
    """Soundness of the relaxation: the rows written at ε = (a subset's exact error) hold at its 0/1 point."""
    rng = np.random.default_rng(3)
    for model in ("R", "L"):
        stream = L.make_stream(2, 11, 12)
        pts = np.vstack([L.initial_points(2, 64, 0), 1.3 * circle(rng.uniform(0, 7, 30))])  # some off the sphere
        for _ in range(30):
            s = (rng.random(12) < 0.5).astype(float)
            err = L.sup_error_exact(stream.w, stream.first[s > 0], stream.second[s > 0], model).value
            if not err < 1:
                continue
            A, b_up, _, b_lo = L.lp_constraints(pts, stream.w, stream.first, stream.second, err * (1 + 1e-12), model)
            assert np.all(A @ s <= b_up + 1e-12)
            assert np.all(A @ s >= b_lo - 1e-12)


@pytest.mark.parametrize("dim,model", [(1, "R"), (2, "R"), (2, "L"), (3, "R")])
def test_lp_certificates_checked_by_their_dual(dim, model):
    for seed in range(2):
        stream = L.make_stream(dim, seed, 2048)
        for eps in (2.0**-3, 2.0**-6):
            lb = L.lp_lower_bound(stream, eps, model)
            cert = lb.certificate
            n = cert.width
            assert lb.lower_bound == n + 1
            first, second = stream.first[:n], stream.second[:n]
            margin = independent_farkas_margin(cert.points, cert.y_up, cert.y_lo, stream.w, first, second, eps, model)
            assert margin < 0 and margin < -L.FARKAS_TOLERANCE * cert.scale
            assert L.check_farkas(cert, stream.w, first, second, eps, model)
            if n > 0:  # HiGHS agrees that the primal at these points is infeasible
                A, b_up, _, b_lo = L.lp_constraints(cert.points, stream.w, first, second, eps, model)
                lo = np.isfinite(b_lo)
                res = linprog(
                    np.zeros(n),
                    A_ub=np.vstack([A, -A[lo]]),
                    b_ub=np.concatenate([b_up, -b_lo[lo]]),
                    bounds=(0, 1),
                    method="highs",
                )
                assert res.status == 2
            # multipliers on the upper rows alone can never contradict (s = 0 satisfies them): refused
            k = len(cert.y_up)
            bad = L.FarkasCertificate(n, cert.points, np.ones(k), np.zeros(k), 0.0, 1.0)
            assert not L.check_farkas(bad, stream.w, first, second, eps, model)
            assert independent_farkas_margin(bad.points, bad.y_up, bad.y_lo, stream.w, first, second, eps, model) > 0


def test_lp_bound_never_exceeds_a_verified_subset():
    """The certified lower bound is at most the width of any subset verified to reach ε (weight pruning in d = 1)."""
    for seed in range(3):
        stream = L.make_stream(1, seed, 512)
        for k in range(2, 9):
            eps = 2.0**-k
            lb = L.lp_lower_bound(stream, eps)
            wc = L.weight_pruning_width(stream, eps)
            # in d = 1 a weight-pruned neuron is a whole neuron or nothing: the masks are a neuron subset
            assert lb.lower_bound <= wc.width


# ----------------------------------------------------------------------------- neuron pruning: MILP


def brute_force_width(stream, eps, model, max_width):
    """Smallest n <= max_width such that some subset of the first n neurons errs <= ε (exact), else None."""
    best = None
    for mask in range(1, 2**max_width):
        idx = [i for i in range(max_width) if (mask >> i) & 1]
        width = idx[-1] + 1
        if best is not None and width >= best:
            continue
        if L.sup_error_exact(stream.w, stream.first[idx], stream.second[idx], model).value <= eps:
            best = width
    return best


@pytest.mark.parametrize("dim,model,seed,width", [(2, "R", 0, 14), (2, "R", 3, 10), (2, "L", 1, 10), (1, "R", 2, 12)])
def test_milp_width_equals_brute_force(dim, model, seed, width):
    stream = L.make_stream(dim, seed, width)
    # ε between the best errors of consecutive widths, so the answer is unambiguous
    best = []
    for n in range(1, width + 1):
        errs = [
            L.sup_error_exact(stream.w, stream.first[list(c)], stream.second[list(c)], model).value
            for r in range(1, n + 1)
            for c in itertools.combinations(range(n), r)
            if c[-1] == n - 1
        ]
        best.append(min([min(errs)] + ([best[-1]] if best else [])))
    levels = sorted(set(best))
    checked = 0
    for hi, lo in zip(levels[::-1][:-1], levels[::-1][1:]):
        if hi - lo < 1e-6:
            continue
        eps = float(np.sqrt(hi * lo)) if lo > 0 else hi / 2
        if not 0 < eps < 1:
            continue
        expect = next(n + 1 for n, e in enumerate(best) if e <= eps)
        got = L.milp_exact_width(stream, eps, model, max_width=width, time_limit=120)
        assert got.status == "exact" and got.width == expect, (eps, got, expect)
        assert L.sup_error_exact(stream.w, stream.first[got.subset], stream.second[got.subset], model).value <= eps
        assert max(got.subset) < got.width
        checked += 1
    assert checked >= 2
    if dim == 2 and model == "R" and width == 14:  # the brute force of the MILP's exact question, once in full
        eps = float(np.sqrt(levels[-1] * levels[-2]))
        assert brute_force_width(stream, eps, model, width) == L.milp_exact_width(stream, eps, model, max_width=width).width


def test_milp_time_limit_is_reported_not_guessed():
    stream = L.make_stream(2, 1, 256)
    got = L.milp_exact_width(stream, 2.0**-7, known_infeasible=30, max_width=200, time_limit=0.0)
    assert got.width is None and got.status.startswith("time-limit")
    got = L.milp_exact_width(L.make_stream(3, 0, 8), 0.25)
    assert got.width is None and got.status.startswith("not-attempted")


# ----------------------------------------------------------------------------- controls and records


def test_d1_shows_no_gap():
    """In d = 1 neuron pruning is weight pruning: the exact neuron width never exceeds the construction's."""
    rec = L.gap_experiment(1, [2.0**-k for k in (2, 4, 6, 8)], seeds=[0, 1, 2], milp_time_limit=60)
    for res in rec["results"]:
        for cell in res["seeds"]:
            assert cell["neuron"]["lower_bound"] <= cell["weight"]["width"]
            ex = cell["neuron"]["exact"]
            assert ex["status"] == "exact"
            assert cell["neuron"]["lower_bound"] <= ex["width"] <= cell["weight"]["width"]
        assert res["median"]["ratio"] <= 1
    assert rec["median_neuron_above_weight_at"] == []
    assert L.check_gap_record(rec)["problems"] == []


def test_model_l_bounds_weight_pruning_too():
    rec = L.gap_experiment(2, [2.0**-3, 2.0**-6], seeds=[0], model="L", milp_max_width=0)
    check = L.check_gap_record(rec)
    assert check["problems"] == [] and check["weight"] == 2 and check["neuron"] == 2
    lbs = [r["seeds"][0]["weight"]["lower_bound"] for r in rec["results"]]
    assert lbs[1] >= lbs[0] >= 1


def test_record_check_catches_tampering():
    rec = L.gap_experiment(2, [2.0**-4], seeds=[0], milp_time_limit=60)
    assert L.check_gap_record(rec) == {"streams": 1, "weight": 1, "neuron": 1, "exact": 1, "weight_limit": 0, "problems": []}
    pristine = json.loads(json.dumps(rec))  # before the edits below
    cell = rec["results"][0]["seeds"][0]
    cell["weight"]["error"] += 1e-6
    cell["neuron"]["lower_bound"] += 1
    cell["neuron"]["certificate"]["y_lower"] = [0.0] * len(cell["neuron"]["certificate"]["y_lower"])
    cell["neuron"]["exact"]["subset"] = cell["neuron"]["exact"]["subset"][:1]
    problems = L.check_gap_record(rec)["problems"]
    assert any("does not match" in p for p in problems)
    assert any("not certificate width + 1" in p for p in problems)
    assert any("certificate fails" in p for p in problems)
    assert any("exact subset errs" in p for p in problems)
    # a width above what its own subset needs (14 -> 15: the subset lies in the first 14), and
    # records too large to check (model L above d = 4; a grid certificate of 10^7 points)
    overstated = json.loads((Path(__file__).resolve().parents[1] / "docs" / "gap" / "d2.json").read_text())
    exact = overstated["results"][0]["seeds"][0]["neuron"]["exact"]  # 14, its stream longer than that
    assert exact["status"] == "exact" and max(exact["subset"]) + 1 == exact["width"]
    exact["width"] += 1
    assert any("overstated: its subset lies within the first" in p for p in L.check_gap_record(overstated)["problems"])
    with pytest.raises(PruningLimitsError, match="model L holds d <= 4"):
        L.check_gap_record({**pristine, "model": "L", "dim": 24})
    with pytest.raises(PruningLimitsError, match="too large to certify here"):
        L.cube_grid(7, 33)
    cell["weight"]["first_mask"] = [[1, 0, 1]]  # wrong shape: reported, not a crash
    assert any("malformed entry" in p for p in L.check_gap_record(rec)["problems"])
    with pytest.raises(PruningLimitsError, match="not a gap record"):
        L.check_gap_record({"dim": 2})


def test_fits():
    eps = [2.0**-k for k in range(2, 8)]
    fits = L.fit_widths(eps, [10 + 4 * k for k in range(2, 8)], [3 * 2 ** (0.5 * k) for k in range(2, 8)])
    assert abs(fits["weight"]["slope_per_halving"] - 4) < 1e-12 and abs(fits["weight"]["r2"] - 1) < 1e-12
    assert abs(fits["neuron"]["exponent"] - 0.5) < 1e-12 and abs(fits["neuron"]["prefactor"] - 3) < 1e-9


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 2.0, float("nan"), float("inf"), "x", None, 0.9999999999999999, 1 - 1e-9])
def test_bad_epsilon_is_one_line(bad):
    with pytest.raises(PruningLimitsError) as info:
        L.check_epsilon(bad)
    assert "\n" not in str(info.value) and "0 < ε <= 1 - 1e-8" in str(info.value)


def test_epsilon_next_to_one_is_refused_in_one_line_not_an_internal_error():
    """ε = 1 - 2^-53 died in lp_lower_bound with "a Farkas multiplier sits on a lower row that does not exist":
    at x = w, t = 0.9999999999999998 and ε r = 0.9999999999999998 leave no lower row (d = 2, seed 0)."""
    eps = 0.9999999999999999
    assert eps == 1 - 2.0**-53 and L.MAX_EPSILON == 1 - 1e-8
    stream = L.make_stream(2, 0, 64)
    for call in (lambda: L.lp_lower_bound(stream, eps), lambda: L.weight_pruning_width(stream, eps),
                 lambda: L.gap_experiment(2, [eps], seeds=[0])):
        with pytest.raises(PruningLimitsError) as info:
            call()
        assert str(info.value) == (
            "ε must satisfy 0 < ε <= 1 - 1e-8 (the target's sup is 1; closer to 1, float64 rounding decides the "
            "certificates), got 0.9999999999999999"
        )
    # the largest ε taken is certified: the empty network's row at x = w keeps t - ε r near 1e-8, far above rounding
    assert L.check_epsilon(L.MAX_EPSILON) == L.MAX_EPSILON
    lb = L.lp_lower_bound(stream, L.MAX_EPSILON)
    assert lb.lower_bound >= 1
    point = np.asarray(stream.w)[None, :]
    t, r = float(point[0] @ stream.w), float(np.linalg.norm(point[0]))
    assert t - L.MAX_EPSILON * r > 0.9e-8 and L.has_lower_row(t, r, 1.0, L.MAX_EPSILON)
    assert not L.has_lower_row(t, r, 1.0, eps)  # the reviewer's ε: the row is rounding, and is not taken


def test_bad_inputs():
    with pytest.raises(PruningLimitsError, match=r"^dim must be an integer >= 1, got 0 \(int\)$") as info:
        L.make_stream(0, 0, 4)
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^dim must be an integer >= 1, got 0 \(int\)$") as info:
        L.gap_experiment(0, [0.5], seeds=[0])
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^expected at least one seed, got none$") as info:
        L.gap_experiment(2, [0.5], seeds=[])
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^model must be one of 'R', 'L', got 'X' \(str\)$") as info:
        L.gap_experiment(2, [0.5], seeds=[0], model="X")
    one_line(info)
    with pytest.raises(PruningLimitsError, match=r"^model L holds d <= 4 \(its LP covers the 2\^d - 1 masks of every neuron\), got d = 5$") as info:
        L.gap_experiment(5, [0.5], seeds=[0], model="L")
    one_line(info)
    with pytest.raises(PruningLimitsError, match="milp_time_limit must be a number of seconds >= 0"):
        L.gap_experiment(2, [0.5], seeds=[0], milp_time_limit=-1.0)


def test_lp_bound_capped_at_the_stream_is_still_certified():
    stream = L.make_stream(2, 0, 6)  # far too few neurons for ε = 2^-10
    lb = L.lp_lower_bound(stream, 2.0**-10)
    assert lb.reached_width is None and lb.lower_bound == 7 and lb.certificate.width == 6
    margin = independent_farkas_margin(
        lb.certificate.points, lb.certificate.y_up, lb.certificate.y_lo, stream.w, stream.first, stream.second, 2.0**-10, "R"
    )
    assert margin < 0


def test_d1_weight_widths_grow_like_log_inverse_epsilon():
    """d = 1: the construction's fitted growth per halving of ε is within a factor 2 of 2d = 2 (THEORY §7)."""
    eps = [2.0**-k for k in range(2, 13)]
    medians = []
    for e in eps:
        widths = [L.weight_pruning_width(L.make_stream(1, seed, 512), e).width for seed in range(5)]
        medians.append(float(np.median(widths)))
    fit = L.fit_widths(eps, medians, [None] * len(eps))["weight"]
    assert 1.0 <= fit["slope_per_halving"] <= 4.0, fit
    assert medians[-1] <= 4 * medians[0]  # logarithmic, not like 1/ε (which would give a factor 1024)


# ----------------------------------------------------------------------------- re-checking records


@pytest.fixture(scope="module")
def small_record():
    return L.gap_experiment(2, [2.0**-2, 2.0**-3], seeds=[0, 1], milp_time_limit=60)


def fresh(record):
    import copy

    return copy.deepcopy(record)


def test_record_check_counts_everything(small_record):
    check = L.check_gap_record(small_record)
    assert check == {"streams": 2, "weight": 4, "neuron": 4, "exact": 4, "weight_limit": 0, "problems": []}


def test_record_check_recomputes_medians_ratios_fits_and_gap(small_record):
    rec = fresh(small_record)
    rec["results"][0]["median"]["weight"] += 1
    rec["results"][1]["median"]["neuron_lower_bound"] = 1000.0
    rec["results"][1]["median"]["ratio"] = 9.0
    rec["fits"]["weight"]["slope_per_halving"] += 0.5
    rec["fits"]["neuron"]["exponent"] = 1.0
    rec["median_neuron_above_weight_at"] = [0.125]
    problems = L.check_gap_record(rec)["problems"]
    assert any("median weight" in p for p in problems)
    assert any("median neuron_lower_bound" in p for p in problems)
    assert any("median ratio" in p for p in problems)
    assert any("fit weight slope_per_halving" in p for p in problems)
    assert any("fit neuron exponent" in p for p in problems)
    assert any("median_neuron_above_weight_at" in p for p in problems)
    rec = fresh(small_record)
    rec["results"][0]["median"]["neuron_exact"] = None  # hiding a finished median is a forgery too
    assert any("median neuron_exact" in p for p in L.check_gap_record(rec)["problems"])


def test_record_check_regenerates_streams(small_record):
    rec = fresh(small_record)
    rec["streams"][0]["second"][0] = float(np.nextafter(rec["streams"][0]["second"][0], 2.0))
    assert any("differ from make_stream(2, 0" in p for p in L.check_gap_record(rec)["problems"])
    rec = fresh(small_record)
    rec["streams"][1]["w"] = [2 * x for x in rec["streams"][1]["w"]]
    problems = L.check_gap_record(rec)["problems"]
    assert any("|w| =" in p and "seed=1" in p for p in problems)
    assert any("differ from make_stream(2, 1" in p for p in problems)


def test_record_check_treats_missing_certificates_as_problems(small_record):
    rec = fresh(small_record)
    cell = rec["results"][0]["seeds"][0]
    cell["weight"]["width"] = None
    cell["neuron"]["lower_bound"] = None
    rec["results"][1]["seeds"][1]["neuron"]["exact"]["width"] = None  # status still says "exact"
    problems = L.check_gap_record(rec)["problems"]
    assert any("weight entry has no certificate" in p for p in problems)
    assert any("neuron entry has no certificate" in p for p in problems)
    assert any("status 'exact' without a width" in p for p in problems)
    # nulled everywhere: nothing left to check is refused, not reported as valid
    for res in rec["results"]:
        for cell in res["seeds"]:
            cell["weight"]["width"] = None
            cell["neuron"]["lower_bound"] = None
            cell["neuron"]["exact"] = {"width": None, "status": "time-limit: x"}
    assert "no certificate of the record could be checked" in L.check_gap_record(rec)["problems"]
    for res in rec["results"]:  # ... and with every cell saying it is uncertified: model R's weight
        for cell in res["seeds"]:  # construction always runs, so only its limits may stand for a width
            cell["weight"]["status"] = cell["neuron"]["status"] = "not-attempted"
    assert any("a model R weight entry has a width or one of the limits" in p for p in L.check_gap_record(rec)["problems"])
    # a number next to an uncertified status is a problem; the status alone is honest
    rec = fresh(small_record)
    ex = rec["results"][0]["seeds"][0]["neuron"]["exact"]
    ex.update(status="time-limit: MILP did not finish", width=3)
    assert any("given with status 'time-limit" in p for p in L.check_gap_record(rec)["problems"])
    ex.update(width=None, subset=None, error=None)
    ex.pop("minimality", None)
    rec["results"][0]["median"]["neuron_exact"] = None
    check = L.check_gap_record(rec)
    assert check["problems"] == [] and check["exact"] == 3


def test_record_check_minimality_claims(small_record):
    cells = [(k, j) for k, r in enumerate(small_record["results"]) for j, c in enumerate(r["seeds"])]
    tried = 0
    for k, j in cells:
        ex = small_record["results"][k]["seeds"][j]["neuron"]["exact"]
        if ex["status"] != "exact":
            continue
        rec = fresh(small_record)
        ex = rec["results"][k]["seeds"][j]["neuron"]["exact"]
        lower = rec["results"][k]["seeds"][j]["neuron"]["lower_bound"]
        ex["minimality"] = "milp-verdict (HiGHS, not re-checkable)" if ex["width"] == lower else "lp-certificate"
        problems = L.check_gap_record(rec)["problems"]
        assert any("minimality" in p for p in problems), (ex, lower)
        tried += 1
    assert tried >= 2


def test_record_check_refuses_empty_and_malformed_records(small_record):
    with pytest.raises(PruningLimitsError, match="no certificate to check"):
        L.check_gap_record({"dim": 2, "model": "R", "streams": [], "results": []})
    bad = [
        ([1, 2], "expected a JSON object"),
        ({"dim": 2, "model": "R", "streams": [], "results": 5}, "'results' must be a list"),
        ({"dim": 0, "model": "R", "streams": [], "results": []}, "'dim'"),
        ({"dim": 2, "model": "Q", "streams": [], "results": []}, "'model'"),
        ({"dim": 2, "model": "R", "streams": 3, "results": []}, "'streams' must be a list"),
        ({"dim": 2, "model": "R", "streams": [5], "results": []}, r"streams\[0\] is malformed"),
        ({"dim": 2, "model": "R", "streams": [{"seed": 0, "w": [1.0], "first": [], "second": []}], "results": []}, "streams"),
        ({"dim": 2, "model": "R", "streams": [], "results": [{"epsilon": 2.0, "seeds": []}]}, r"results\[0\]"),
        ({"dim": 2, "model": "R", "streams": [], "results": [{"epsilon": 0.5, "seeds": [3]}]}, r"results\[0\]"),
    ]
    for record, message in bad:
        with pytest.raises(PruningLimitsError, match=message) as info:
            L.check_gap_record(record)
        assert "\n" not in str(info.value)
    rec = fresh(small_record)
    rec["streams"][0]["first"] = "abc"
    with pytest.raises(PruningLimitsError, match=r"streams\[0\] is malformed"):
        L.check_gap_record(rec)


def test_weight_acceptance_is_the_checks_strict_test():
    """weight_pruning_width accepts only err <= ε, the test check_gap_record applies (no 1e-12 slack)."""
    stream = L.make_stream(2, 3, 512)
    for k in range(2, 10):
        cert = L.weight_pruning_width(stream, 2.0**-k)
        # ε set to the certificate's own error: still accepted; a hair below: a wider width or refusal
        again = L.weight_pruning_width(stream, cert.error)
        assert again.error <= cert.error
        below = float(np.nextafter(cert.error, 0.0))
        if below > 0:
            other = L.weight_pruning_width(stream, below)
            assert other.error <= below and other.width >= again.width


def test_milp_stall_within_solver_tolerance_is_undecided_not_time_limit():
    """A subset erring in (ε, ε(1 + 1e-7)]: the cutting planes add no point the solver sees as violated.

    ε is set just below the best error over all subsets of the first 10 neurons (brute force), so
    width 10 is infeasible but the MILP, within its feasibility tolerance, keeps returning the
    best subset. This used to re-solve the same MILP until the round limit and say "time-limit".
    """
    n = 10
    stream = L.make_stream(2, 0, n)
    best = min(
        L.sup_error_exact(stream.w, stream.first[list(c)], stream.second[list(c)]).value
        for r in range(1, n + 1)
        for c in itertools.combinations(range(n), r)
    )
    eps = best * (1 - 1e-9)
    got = L.milp_exact_width(stream, eps, known_infeasible=n - 1, max_width=n, time_limit=600)
    assert got.width is None
    assert got.status.startswith("undecided"), got.status


# ----------------------------------------------------------------------------- review fixes: limits, shapes, inputs


def test_epsilon_text_is_exact():
    """ε was shown with 6 significant digits: 0.9999999 read "1" and "2^-1.44e-07"."""
    assert L.epsilon_text(0.25) == "2^-2" and L.epsilon_text(2.0**-12) == "2^-12"
    assert L.epsilon_text(0.9999999) == "0.9999999" and L.epsilon_text(1e-15) == "1e-15"
    assert L.epsilon_text(0.1) == "0.1" and L.epsilon_text(0.75) == "0.75"
    assert L.epsilon_text(5e-324) == "2^-1074"  # the smallest subnormal is a power of two too
    assert L.epsilon_text(np.nextafter(0.25, 1.0)) == repr(float(np.nextafter(0.25, 1.0)))
    with pytest.raises(PruningLimitsError, match=r"got 1\.0000001$"):
        L.check_epsilon(1.0000001)


def test_milp_search_stops_at_a_shorter_stream():
    """max_width above the stream's width: the MILP got 64 columns for 20 neurons (ValueError from scipy)."""
    got = L.milp_exact_width(L.make_stream(1, 1, 20), 0.25)  # max_width 64
    assert got.width is None and got.infeasible_up_to == 20
    assert got.status == "above-stream-width: MILP infeasible at every width up to the stream's 20 neurons"
    longer = L.milp_exact_width(L.make_stream(1, 1, 200), 0.25)
    assert longer.status == "exact" and longer.width > 20  # consistent: no subset of the first 20 reaches ε
    within = L.milp_exact_width(L.make_stream(1, 1, longer.width), 0.25)  # the stream ends at the answer
    assert within.status == "exact" and within.width == longer.width and within.subset == longer.subset
    capped = L.milp_exact_width(L.make_stream(1, 1, 200), 0.25, max_width=20)  # the cap is the caller's: as before
    assert capped.status.startswith("above-max-width") and capped.infeasible_up_to == 20
    short = L.milp_exact_width(L.make_stream(2, 0, 6), 2.0**-10, max_width=48)
    assert short.status.startswith("above-stream-width") and short.infeasible_up_to == 6


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"epsilons": [0.25], "seeds": 2}, r"seeds must be a sequence of seeds, e\.g\. range\(5\) .*got 2 \(int\)"),
        ({"epsilons": 0.25, "seeds": [0]}, r"epsilons must be a sequence of numbers in \(0, 1\).*got 0\.25 \(float\)"),
        ({"epsilons": "0.25", "seeds": [0]}, r"epsilons must be a sequence.*got '0\.25' \(str\)"),
        ({"epsilons": np.array(0.25), "seeds": [0]}, r"epsilons must be a sequence.*\(ndarray\)"),
        ({"epsilons": [0.25], "seeds": {0: 1}}, r"seeds must be a sequence.*\(dict\)"),
    ],
)
def test_gap_experiment_refuses_a_bare_number_in_one_line(kwargs, message):
    """seeds=2 and epsilons=0.25 were a bare TypeError: 'int' object is not iterable."""
    with pytest.raises(PruningLimitsError, match=message) as info:
        L.gap_experiment(1, neuron=False, **kwargs)
    assert "\n" not in str(info.value)


def test_gap_experiment_takes_any_sequence():
    rec = L.gap_experiment(1, np.array([0.25]), seeds=range(2), neuron=False)
    assert rec["seeds"] == [0, 1] and rec["epsilons"] == [0.25]
    assert L.check_gap_record(rec)["problems"] == []


def test_weight_limit_names_the_stream_width():
    stream = L.make_stream(2, 0, 40)
    with pytest.raises(L.WeightUnreachable) as info:
        L.weight_pruning_width(stream, 2.0**-8)
    exc = info.value
    assert isinstance(exc, PruningLimitsError) and "\n" not in str(exc) and str(exc) == exc.status
    assert exc.stream_width == 40 and exc.bound == L.subset_sum_construction(stream, 40)[2] > 2.0**-8
    assert exc.status.startswith("stream-width-limit: in d = 2 the construction's bound with all 40 neurons")
    assert "ε = 2^-8" in exc.status and L.saturation_width(stream) is None


def test_weight_limit_names_the_items_per_class():
    """d = 1, ε = 1e-15: the limit is 40 items per class, not the 4096 neurons the message named."""
    stream = L.make_stream(1, 0, 4096)
    full = L.saturation_width(stream)
    assert full is not None and full <= 4096
    with pytest.raises(L.WeightUnreachable) as info:
        L.weight_pruning_width(stream, 1e-15)
    exc = info.value
    assert exc.status.startswith(f"items-per-class-limit: in d = 1 the construction takes at most {L.MAX_SUBSET_ITEMS} neurons")
    assert f"from width {full} on" in exc.status and "ε = 1e-15" in exc.status
    # the search stops where the classes are full; the bound is that of the whole stream
    assert exc.stream_width == 4096 and exc.bound == L.subset_sum_construction(stream, 4096)[2] > 1e-15
    # saturation_width: the first width at which each class holds MAX_SUBSET_ITEMS neurons
    signs = np.sign(stream.first[:, 0])
    assert full == 1 + max(np.flatnonzero(signs == 1)[L.MAX_SUBSET_ITEMS - 1], np.flatnonzero(signs == -1)[L.MAX_SUBSET_ITEMS - 1])


def test_weight_galloping_stays_near_the_answer(monkeypatch):
    """A warm start galloped by doubling the width: from 52 it ran the construction at 104 for an answer
    of 63, and in d = 64 it ran it on full classes far past the answer (110 s per ladder, 13 s now)."""
    stream = L.make_stream(2, 0, 4096)
    widths = []
    real = L.subset_sum_construction
    monkeypatch.setattr(L, "subset_sum_construction", lambda st, n: widths.append(n) or real(st, n))
    previous = None
    for eps in [2.0**-k for k in range(2, 13)]:
        widths.clear()
        got = L.weight_pruning_width(stream, eps, start=previous).width
        # the smallest width at which the construction's bound reaches ε, by a linear scan
        assert got == next(n for n in range(1, 4097) if real(stream, n)[2] <= eps)
        if previous is not None:
            assert max(widths) <= got + max(got - previous, 0) + 2 * stream.dim, (eps, previous, got, max(widths))
        previous = got


def test_stream_width_reaches_the_default_ladder_up_to_max_dim():
    """MAX_DIM was 1024 while 4096 neurons reached no ε <= 0.5 from d = 300 (docs/gap.md measures it).

    At MAX_DIM the experiment's stream fills every (coordinate, sign) class, so the construction is
    limited by its items per class (bounds near 1e-11), not by the stream; 4096 neurons did not.
    """
    assert L.MAX_DIM == 128 and L.stream_width(L.MAX_DIM) == L.STREAM_NEURONS_PER_DIM * L.MAX_DIM
    assert all(L.stream_width(d) == L.MIN_STREAM_WIDTH for d in (1, 2, 4, 8, 32))  # the published records' streams
    for seed in range(5):
        full = L.saturation_width(L.make_stream(L.MAX_DIM, seed, L.stream_width(L.MAX_DIM)))
        assert full is not None and full <= L.stream_width(L.MAX_DIM)
    assert L.saturation_width(L.make_stream(L.MAX_DIM, 0, L.MIN_STREAM_WIDTH)) is None
    with pytest.raises(L.WeightUnreachable, match="stream-width-limit: in d = 128"):
        L.weight_pruning_width(L.make_stream(L.MAX_DIM, 0, L.MIN_STREAM_WIDTH), 2.0**-12)
    with pytest.raises(PruningLimitsError, match=f"dim must be at most {L.MAX_DIM}, got {L.MAX_DIM + 1}"):
        L.gap_experiment(L.MAX_DIM + 1, [0.25], [0], neuron=False)
    # records written while MAX_DIM was 1024 stay checkable (a review found them refused)
    assert L.CHECK_MAX_DIM == 1024 and L._dim_problem(1024, "R", L.CHECK_MAX_DIM) is None
    assert L._dim_problem(1025, "R", L.CHECK_MAX_DIM) == "dim must be at most 1024, got 1025"


@pytest.fixture()
def short_stream(monkeypatch):
    """The experiment's stream cut to 40 neurons: in d = 2, ε = 2^-2 is reached (widths 12, 37), 2^-8 and 2^-10 are not."""
    monkeypatch.setattr(L, "MIN_STREAM_WIDTH", 40)
    monkeypatch.setattr(L, "STREAM_NEURONS_PER_DIM", 0)
    assert L.stream_width(2) == 40


@pytest.fixture()
def limited_record(short_stream):
    return L.gap_experiment(2, [2.0**-2, 2.0**-8, 2.0**-10], seeds=[0, 1], neuron=False)


def test_unreachable_weight_cell_is_recorded_and_the_run_goes_on(limited_record):
    """One ε out of the stream's reach threw away every finished cell (rc 1, nothing written)."""
    rec = limited_record
    reached, *unreached = rec["results"]
    assert [c["weight"]["width"] for c in reached["seeds"]] == [12, 37] and reached["median"]["weight"] == 24.5
    for res in unreached:
        assert res["median"]["weight"] is None
        for cell in res["seeds"]:
            wt = cell["weight"]
            assert wt["width"] is None and wt["stream_width"] == 40
            assert wt["status"].startswith("stream-width-limit: in d = 2") and f"ε = {L.epsilon_text(res['epsilon'])}" in wt["status"]
            with pytest.raises(L.WeightUnreachable) as info:  # the same limit the search itself names
                L.weight_pruning_width(L.make_stream(2, cell["seed"], 40), res["epsilon"])
            assert info.value.status == wt["status"] and info.value.bound == wt["bound_at_stream_width"]
    assert rec["fits"]["weight"] is None  # one ε with a median: nothing to fit
    check = L.check_gap_record(json.loads(json.dumps(rec)))
    assert check == {"streams": 2, "weight": 2, "neuron": 0, "exact": 0, "weight_limit": 4, "problems": []}


def test_record_check_re_derives_weight_limits(limited_record, short_stream):
    """A weight limit is a claim the check re-derives: a forged one is a problem, not an honest status."""
    def problems_after(edit):
        rec = fresh(limited_record)
        edit(rec)
        return L.check_gap_record(rec)["problems"]

    def hide(rec):  # a width the stream reaches, hidden behind a limit
        rec["results"][0]["seeds"][0]["weight"] = {**rec["results"][1]["seeds"][0]["weight"]}
        rec["results"][0]["median"]["weight"] = None
    assert any("but the construction reaches ε with the stream's 40 neurons" in p for p in problems_after(hide))

    def swap(rec):
        wt = rec["results"][1]["seeds"][1]["weight"]
        wt["status"] = wt["status"].replace("stream-width-limit", "items-per-class-limit")
    assert any("names 'items-per-class-limit', but the limit is 'stream-width-limit'" in p for p in problems_after(swap))

    def bound(rec):
        rec["results"][1]["seeds"][1]["weight"]["bound_at_stream_width"] *= 2
    assert any("bound_at_stream_width" in p and "is not the construction's" in p for p in problems_after(bound))

    def shorter(rec):
        rec["results"][1]["seeds"][0]["weight"]["stream_width"] = 20
    assert any("claimed at a stream of 20 neurons, not the experiment's 40" in p for p in problems_after(shorter))

    def width_too(rec):
        rec["results"][0]["seeds"][0]["weight"]["status"] = rec["results"][1]["seeds"][0]["weight"]["status"]
    assert any("weight width 12 given with status 'stream-width-limit" in p for p in problems_after(width_too))

    def bare(rec):
        del rec["results"][2]["seeds"][0]["weight"]["status"]
    assert any("weight entry has no certificate and no uncertified status" in p for p in problems_after(bare))

    # a review's forgeries: 'certified-error-limit' (or any status) hid a width of 12 and passed as valid
    def rounding(rec):
        rec["results"][0]["seeds"][0]["weight"] = {**rec["results"][1]["seeds"][0]["weight"]}
        rec["results"][0]["seeds"][0]["weight"]["status"] = "certified-error-limit: forged"
        rec["results"][0]["seeds"][0]["weight"]["bound_at_stream_width"] = L._stream_limit(2, 0, 40)[0]
        rec["results"][0]["median"]["weight"] = None
    assert any("status 'certified-error-limit', but width 12 reaches ε" in p for p in problems_after(rounding))

    def unreached_rounding(rec):  # the bound itself stays above ε: not a rounding limit
        rec["results"][1]["seeds"][0]["weight"]["status"] = "certified-error-limit: forged"
    assert any("'certified-error-limit', but the construction's bound" in p and "stays above ε" in p
               for p in problems_after(unreached_rounding))

    def made_up(rec):
        rec["results"][0]["seeds"][0]["weight"] = {"width": None, "status": "anything at all"}
        rec["results"][0]["median"]["weight"] = None
    assert any("a model R weight entry has a width or one of the limits" in p for p in problems_after(made_up))


def test_figure_without_any_width_says_so(short_stream, tmp_path):
    """`gap --dim 1 --epsilon 1e-15 --weight-only --plot` died in savefig ("Data cannot be log-scaled"): no width to draw."""
    from pruning_limits.report import save_figure

    rec = L.gap_experiment(2, [2.0**-8, 2.0**-10], seeds=[0, 1], neuron=False)
    assert all(c["weight"]["width"] is None for r in rec["results"] for c in r["seeds"])
    fig = L.gap_figure(rec)
    save_figure(fig, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes()[:4] == b"\x89PNG"
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_xscale() == "log"
    assert ax.get_xlim()[0] < 2.0**8 and ax.get_xlim()[1] > 2.0**10  # the record's 1/ε, not a default range
    assert [t.get_text() for t in ax.texts] == ["no certified widths: the record names the limit of each cell"]
    rec["results"][0]["seeds"][0]["weight"] = {"width": 12}  # one width: log axes, no note
    ax = L.gap_figure(rec).axes[0]
    assert ax.get_yscale() == "log" and len(ax.texts) == 0


def test_record_check_refuses_a_repeated_epsilon(small_record):
    """A record with a repeated ε row (medians and fits made consistent with it) passed --check; the experiment refuses it."""
    with pytest.raises(PruningLimitsError, match=r"epsilons must be distinct, got \[0.25, 0.25\]"):  # the API's own message
        L.gap_experiment(1, [0.25, 0.25], seeds=[0], neuron=False)
    rec = fresh(small_record)
    rec["results"].append(fresh(rec["results"][0]))
    rec["epsilons"].append(rec["epsilons"][0])
    rec["fits"] = L.fit_widths(  # the fits recomputed with the repeated row: only the repetition is wrong
        rec["epsilons"],
        [r["median"]["weight"] for r in rec["results"]],
        [r["median"]["neuron_lower_bound"] for r in rec["results"]],
    )
    problems = L.check_gap_record(rec)["problems"]
    assert problems == ["eps=2^-2: ε appears in more than one result (a repeated row counts twice in the fits)"]


def test_record_check_refuses_a_weight_limit_above_max_dim_before_any_work(monkeypatch):
    """A forged 5 KB record (d = 192, one stream with only w, a stream-width-limit) kept --check busy for 148 s:
    the experiment records weight limits only for d <= MAX_DIM, and re-deriving one reruns the construction."""
    dim = L.MAX_DIM + 1
    w = L.make_stream(dim, 0, 0).w.tolist()

    def record(status):
        return {
            "dim": dim, "model": "R", "seeds": [0], "epsilons": [0.5],
            "streams": [{"seed": 0, "w": w, "first": [], "second": []}],
            "results": [{"epsilon": 0.5, "median": {"weight": None}, "seeds": [{"seed": 0, "weight": {
                "width": None, "status": status, "stream_width": L.stream_width(dim), "bound_at_stream_width": 0.9}}]}],
            "fits": {"weight": None, "neuron": None}, "median_neuron_above_weight_at": [],
        }

    def no_work(*args, **kwargs):
        raise AssertionError("the record was worked on before it was refused")

    for name in ("make_stream", "subset_sum_construction", "saturation_width", "weight_pruning_width"):
        monkeypatch.setattr(L, name, no_work)
    for kind in L.WEIGHT_LIMITS:
        with pytest.raises(PruningLimitsError) as info:
            L.check_gap_record(record(f"{kind}: forged"))
        assert str(info.value) == (
            f"refused: results[0] claims a weight limit ({kind}) in d = {dim}; the experiment records weight limits "
            f"only for d <= {L.MAX_DIM}, and re-deriving one reruns the construction on all {L.stream_width(dim)} "
            "neurons of the stream"
        )
    monkeypatch.undo()
    # a record of that d without a weight limit is still checked (records up to CHECK_MAX_DIM stay checkable)
    problems = L.check_gap_record(record("not-attempted"))["problems"]
    assert any("a model R weight entry has a width or one of the limits" in p for p in problems)


# ----------------------------------------------------------------------------- review fixes (rounding gap, forged fields)


def test_certified_error_limit_search_stops_where_the_construction_stops_changing(monkeypatch):
    """d = 1, seed 2, ε = the construction's bound at full classes: its certified error rounds above ε, and the
    search reran the whole construction at every width up to the end of the stream (about 4000 runs, an hour).

    It now runs it at the widths where a class gains a member only, and none past the saturation width. The verdict
    is checked against a brute force over every width up to well past saturation."""
    stream = L.make_stream(1, 2, L.stream_width(1))
    eps = 1.091571277811454e-12
    full = L.saturation_width(stream)
    real = L.subset_sum_construction
    assert full == 84 and real(stream, full)[2] == eps == real(stream, stream.width)[2]
    widths = []
    monkeypatch.setattr(L, "subset_sum_construction", lambda st, n: widths.append(n) or real(st, n))
    with pytest.raises(L.WeightUnreachable) as info:
        L.weight_pruning_width(stream, eps)
    status = info.value.status
    assert status.startswith(
        "certified-error-limit: in d = 1 the construction's bound reaches ε = 1.091571277811454e-12 from width 76 on, "
        "but the certified error of its masked network stays above ε (float64 rounding) at every width where the "
        "construction changes, up to width 84, from which every (coordinate, sign) class holds its 40 neurons"
    )
    assert info.value.bound == eps and info.value.stream_width == 4096
    changes = L.construction_changes(stream, 76, stream.width)
    assert changes == [77, 78, 82, 84]  # the widths after 76 at which neuron n - 1 joins a class that is not full
    # galloping (2, 4, ..., 128) and bisection: 2 log2(4096) at most; then 76 and its changes, and nothing past 84
    assert len(widths) <= 2 * 12 + 1 + len(changes) and max(widths) == 128
    assert widths[-1 - len(changes):] == [76, *changes]
    # brute force: no width reaches ε with a certified error <= ε (the construction is the same from 84 on)
    for n in range(1, 200):
        first_mask, second_mask, bound = real(stream, n)
        err = L.certified_error(stream.w, stream.first[:n] * first_mask, stream.second[:n] * second_mask)[0]
        assert not (bound <= eps and err <= eps), n
        if n >= full:
            assert bound == eps and err > eps


def test_construction_changes_only_where_a_class_gains_a_member():
    """Between two widths that construction_changes does not list, the masks gain a zero row and nothing else."""
    for dim, seed in ((1, 0), (2, 3), (3, 1)):
        stream = L.make_stream(dim, seed, 60 * dim)
        changes = set(L.construction_changes(stream, 0, stream.width))
        assert len(changes) <= 2 * dim * L.MAX_SUBSET_ITEMS
        previous = L.subset_sum_construction(stream, 0)
        for n in range(1, stream.width + 1):
            now = L.subset_sum_construction(stream, n)
            if n not in changes:
                assert np.array_equal(now[0][:-1], previous[0]) and not now[0][-1].any()
                assert np.array_equal(now[1][:-1], previous[1]) and now[1][-1] == 0 and now[2] == previous[2]
            previous = now


def consistent(rec):
    """Medians, ratios, fits and the gap list recomputed from the cells (so a forgery is the one edit made)."""
    for res in rec["results"]:
        med = res["median"]
        med["weight"] = L._median([c["weight"]["width"] for c in res["seeds"]])
        if med["weight"] is not None and med.get("neuron_lower_bound") is not None:
            med["ratio"] = med["neuron_lower_bound"] / med["weight"]
    rec["fits"] = L.fit_widths(
        rec["epsilons"], [r["median"]["weight"] for r in rec["results"]], [r["median"]["neuron_lower_bound"] for r in rec["results"]]
    )
    rec["median_neuron_above_weight_at"] = [r["epsilon"] for r in rec["results"] if r["median"].get("ratio", 0) > 1]
    return rec


def test_record_check_refuses_padded_weight_masks(small_record):
    """A weight width raised with its masks padded by zero rows (medians and fits recomputed) passed --check:
    a valid upper bound, but not the construction's width, and it distorts the slope per halving."""
    rec = fresh(small_record)
    cell = rec["results"][0]["seeds"][0]
    wt = cell["weight"]
    n, stored = wt["width"], len(rec["streams"][0]["second"])
    assert stored > n
    wt["width"] = stored
    wt["first_mask"] += [[0, 0]] * (stored - n)
    wt["second_mask"] += [0] * (stored - n)
    assert L.check_gap_record(consistent(fresh(small_record)))["problems"] == []  # the helper alone changes nothing
    assert L.check_gap_record(consistent(rec))["problems"] == [
        f"eps=2^-2 seed=0: weight width {stored} overstated: its masks keep no neuron past the first {n}"
    ]


def test_weight_certificates_end_on_a_kept_neuron():
    """What the check requires of a weight width, the search delivers: its last row is used."""
    for dim in (1, 2, 3):
        for seed in range(3):
            stream = L.make_stream(dim, seed, 512)
            for k in range(2, 11, 2):
                cert = L.weight_pruning_width(stream, 2.0**-k)
                assert cert.second_mask[-1] == 1 and cert.first_mask[-1].any()
                assert cert.first_mask.shape == (cert.width, dim) and cert.second_mask.shape == (cert.width,)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("kind", "x", "'kind' must be 'pruning-gap', got 'x' (str)"),
        ("farkas_tolerance", "x", "'farkas_tolerance' must be 1e-09, the tolerance the certificates are re-checked with, got 'x' (str)"),
        ("farkas_tolerance", 1e-3, "'farkas_tolerance' must be 1e-09, the tolerance the certificates are re-checked with, got 0.001 (float)"),
        ("farkas_scale", "x", f"'farkas_scale' must be {L.FARKAS_SCALE!r} (or absent in older records), got 'x' (str)"),
        ("weight_meaning", "x", "'weight_meaning' must be 'certified upper bound (construction)' for model R, got 'x' (str)"),
    ],
)
def test_record_check_checks_the_header_fields(small_record, field, value, message):
    """kind, farkas_tolerance and weight_meaning were never read: a record saying anything there passed."""
    rec = fresh(small_record)
    rec[field] = value
    assert L.check_gap_record(rec)["problems"] == [message]


@pytest.mark.parametrize("part", ["weight", "neuron"])
def test_record_check_reads_the_fit_model_text(small_record, part):
    rec = fresh(small_record)
    expected = rec["fits"][part]["model"]
    rec["fits"][part]["model"] = "x"
    assert L.check_gap_record(rec)["problems"] == [f"fit {part} model 'x' is not {expected!r}"]


def test_record_check_compares_stored_margins_and_scales(small_record):
    """A certificate's stored margin and scale were never compared with the recomputed ones."""
    cert = small_record["results"][1]["seeds"][1]["neuron"]["certificate"]
    stream = L.make_stream(2, 1, cert["width"])
    margin, scale = L.farkas_margin(
        np.array(cert["points"]), cert["y_upper"], cert["y_lower"], stream.w, stream.first, stream.second, 2.0**-3, "R"
    )
    assert (cert["margin"], cert["scale"]) == (margin, scale) and margin < -L.FARKAS_TOLERANCE * scale
    # the scale is the closed form (L + ε) sum_g (y_up,g + y_lo,g) |x_g|, L = |w| + sum_i |v_i| |u_i|
    lipschitz = 1.0 + sum(abs(v) * math.hypot(*u) for u, v in zip(stream.first, stream.second))
    norms = [math.hypot(*x) for x in cert["points"]]
    assert math.isclose(scale, (lipschitz + 2.0**-3) * sum((a + b) * r for a, b, r in zip(cert["y_upper"], cert["y_lower"], norms)), rel_tol=1e-12)
    for key, value, message in [
        ("margin", "x", "eps=2^-3 seed=1: neuron certificate margin 'x' is not the recomputed "),
        ("margin", margin / 2, "eps=2^-3 seed=1: neuron certificate margin "),
        ("scale", "x", "eps=2^-3 seed=1: neuron certificate scale 'x' is not the recomputed "),
        ("scale", scale * (1 + 1e-6), "eps=2^-3 seed=1: neuron certificate scale "),
    ]:
        rec = fresh(small_record)
        rec["results"][1]["seeds"][1]["neuron"]["certificate"][key] = value
        problems = L.check_gap_record(rec)["problems"]
        assert len(problems) == 1 and problems[0].startswith(message), (key, value, problems)
        assert (f"{scale!r} (the record's farkas_scale)" in problems[0]) == (key == "scale")


def test_committed_record_keeps_its_legacy_scale_and_passes_the_sound_one():
    """docs/gap/d2.json was written with scale = sum y (|b| + sum |A|); it states no farkas_scale. Its stored scales
    are compared in that definition, and every certificate passes the test against the larger, sound scale."""
    record = json.loads((Path(__file__).resolve().parents[1] / "docs" / "gap" / "d2.json").read_text())
    assert "farkas_scale" not in record
    streams = {s["seed"]: (np.array(s["w"]), np.array(s["first"]), np.array(s["second"])) for s in record["streams"]}
    worst = -math.inf
    for res in record["results"]:
        for cell in res["seeds"]:
            cert = cell["neuron"]["certificate"]
            w, first, second = streams[cell["seed"]]
            n = cert["width"]
            margin, scale = L.farkas_margin(np.array(cert["points"]), cert["y_upper"], cert["y_lower"], w, first[:n], second[:n], res["epsilon"], "R")
            assert scale >= cert["scale"]  # the sound scale bounds the legacy one
            worst = max(worst, margin / scale)
    assert worst < -10 * L.FARKAS_TOLERANCE  # -1.6e-8: the closest certificate keeps a factor 15
    forged = fresh(record)
    forged["results"][0]["seeds"][0]["neuron"]["certificate"]["scale"] *= 2
    problems = L.check_gap_record(forged)["problems"]
    assert len(problems) == 1 and "neuron certificate scale" in problems[0] and "(the record's legacy_farkas_scale)" in problems[0]


def test_rounding_scale_bounds_the_error_where_a_neuron_cancels():
    """The legacy scale (|b| + sum |A|) did not bound the rounding of A_gi = v_i relu(<u_i, x>) where <u_i, x> ~ 0;
    the rounding scale does. Exact rational arithmetic against float64 at points on a neuron's kink."""
    from fractions import Fraction

    rng = np.random.default_rng(5)
    w = rng.standard_normal(3)
    w /= np.linalg.norm(w)
    first = rng.standard_normal((30, 3)) * 1e3  # large rows: the cancellation's absolute error is large
    second = rng.uniform(-1, 1, 30)
    worst = worst_own = 0.0
    for i in range(30):  # a point on neuron i's kink, <u_i, x> = 0 up to rounding
        x = np.cross(first[i], rng.standard_normal(3))
        x /= np.linalg.norm(x)
        A, b_up, _, _ = L.lp_constraints(x[None, :], w, first, second, 2.0**-12, "R")
        exact = [Fraction(float(v)) * max(sum(Fraction(float(a)) * Fraction(float(c)) for a, c in zip(u, x)), Fraction(0)) for u, v in zip(first, second)]
        err = [abs(Fraction(float(a)) - e) for a, e in zip(A[0], exact)]
        scale = L.rounding_scale(x[None, :], [1.0], [0.0], w, first, second, 2.0**-12)
        worst = max(worst, float(max(err)) / scale)
        own = float(err[i]) / max(abs(float(A[0, i])), 1e-300)  # against the entry's own |A_gi|, the legacy term
        worst_own = max(worst_own, own)
    assert 0 < worst < (3 + 3) * 2.0**-53  # each entry within (d + 3) 2^-53 of the rounding scale
    assert worst_own > 1e-3  # while an entry's own size does not bound its error (relative error far above 2^-53)


def test_a_list_where_a_bound_belongs_is_a_problem_without_a_numpy_warning(small_record):
    """`lower_bound: []` in every cell of an ε printed numpy's "Mean of empty slice" before the problems."""
    import warnings

    rec = fresh(small_record)
    for cell in rec["results"][0]["seeds"]:
        cell["neuron"]["lower_bound"] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problems = L.check_gap_record(rec)["problems"]
    assert "eps=2^-2: malformed entry (ValueError: lower_bound must be an integer, got [] (list))" in problems
    assert any(p.startswith("eps=2^-2: median neuron_lower_bound ") and p.endswith(" is not None (from the cells)") for p in problems)
    assert L._median([1, 2, 4]) == 2.0 and L._median([1, None]) is None and L._median([[], []]) is None
    assert L._median([True, 3]) is None  # a bool is not a width


def test_record_check_refuses_a_width_in_a_model_l_weight_entry():
    """Model L certifies a weight lower bound only; a width there (the fuzz set 'x') passed unread."""
    rec = L.gap_experiment(1, [0.25], seeds=[0], model="L", neuron=False)
    assert L.check_gap_record(fresh(rec))["problems"] == []
    rec["results"][0]["seeds"][0]["weight"]["width"] = "x"
    assert L.check_gap_record(rec)["problems"] == [
        "eps=2^-2 seed=0: a model L weight entry has a lower bound and width null, got width 'x' (str)"
    ]
