"""Gaussian widths and statistical dimensions against closed forms and seeded Monte Carlo.

Monte-Carlo comparisons use a tolerance of 4 standard errors (a false alarm rate of ~6e-5
per comparison for a Gaussian mean); closed forms are compared to 1e-9 relative.
"""

import math

import numpy as np
import pytest
from scipy.special import ellipe, gammaln

from pruning_limits import PruningLimitsError, Spectrum
from pruning_limits.geometry import (
    circular_cone_statistical_dimension,
    circular_cone_statistical_dimension_approx,
    ellipsoid_width_bounds,
    ellipsoid_width_mc,
    kinematic_margin,
    orthant_statistical_dimension,
    project_circular_cone,
    project_orthant,
    project_subspace,
    projected_ellipsoid_dimension,
    spectral_statistical_dimension,
    statistical_dimension_mc,
    subspace_statistical_dimension,
)

SIGMAS = 4.0


def test_ellipsoid_width_inside_sandwich_and_seeded():
    rng = np.random.default_rng(1)
    for dim in (1, 5, 50, 400):
        r = rng.lognormal(sigma=1.5, size=dim)
        lower, upper = ellipsoid_width_bounds(r)
        assert lower == pytest.approx(math.sqrt(2 / math.pi) * np.linalg.norm(r))
        assert upper == pytest.approx(np.linalg.norm(r))
        est = ellipsoid_width_mc(r, samples=4000, seed=3)
        assert lower - SIGMAS * est.stderr <= est.value <= upper + SIGMAS * est.stderr
        again = ellipsoid_width_mc(r, samples=4000, seed=3)
        assert again.value == est.value


def test_ellipsoid_width_matches_closed_forms():
    # A ball of radius r in R^D: w = r·E‖g‖ = r·√2·Γ((D+1)/2)/Γ(D/2).
    for dim in (1, 3, 30, 300):
        exact = 2.0 * math.sqrt(2) * math.exp(gammaln((dim + 1) / 2) - gammaln(dim / 2))
        est = ellipsoid_width_mc(np.full(dim, 2.0), samples=20_000, seed=dim)
        assert abs(est.value - exact) <= SIGMAS * est.stderr
    # A segment attains the lower bound of the sandwich.
    est = ellipsoid_width_mc([3.0], samples=20_000, seed=0)
    assert abs(est.value - 3.0 * math.sqrt(2 / math.pi)) <= SIGMAS * est.stderr
    # An ellipse with semi-axes a ≥ b: w = sqrt(π/2)·(perimeter)/(2π), perimeter = 4a·E(1 − b²/a²).
    a, b = 3.0, 0.5
    exact = math.sqrt(math.pi / 2) * 4 * a * ellipe(1 - b**2 / a**2) / (2 * math.pi)
    est = ellipsoid_width_mc([a, b], samples=50_000, seed=7)
    assert abs(est.value - exact) <= SIGMAS * est.stderr


def test_width_of_flat_ellipsoid_is_infinite_or_refused():
    assert ellipsoid_width_bounds([1.0, math.inf]) == (math.inf, math.inf)
    with pytest.raises(PruningLimitsError, match="infinite"):
        ellipsoid_width_mc([1.0, math.inf])
    with pytest.raises(PruningLimitsError, match="non-negative"):
        ellipsoid_width_bounds([1.0, -1.0])


def test_orthant_and_subspace_against_monte_carlo():
    for dim in (1, 7, 200):
        est = statistical_dimension_mc(project_orthant, dim, samples=20_000, seed=dim)
        assert orthant_statistical_dimension(dim) == dim / 2
        assert abs(est.value - dim / 2) <= SIGMAS * est.stderr
    rng = np.random.default_rng(0)
    dim, k = 60, 17
    basis, _ = np.linalg.qr(rng.normal(size=(dim, k)))
    est = statistical_dimension_mc(lambda x: project_subspace(x, basis), dim, samples=20_000, seed=2)
    assert subspace_statistical_dimension(k) == k
    assert abs(est.value - k) <= SIGMAS * est.stderr


def test_circular_cone_projection_is_a_projection():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 6))
    for alpha in (0.0, 0.4, math.pi / 4, 1.3, math.pi / 2):
        p = project_circular_cone(x, alpha)
        # In the cone, idempotent, and the residual is orthogonal to the projection (Moreau).
        norms = np.linalg.norm(p, axis=1)
        assert (p[:, 0] >= norms * math.cos(alpha) - 1e-12).all()
        assert np.allclose(project_circular_cone(p, alpha), p, atol=1e-12)
        assert np.allclose(np.einsum("ij,ij->i", p, x - p), 0.0, atol=1e-10)


def test_circular_cone_exact_formula_against_monte_carlo():
    for dim, alpha in [(2, 0.7), (3, 0.1), (10, 0.3), (100, 1.0), (400, 0.2), (50, math.pi / 2)]:
        exact = circular_cone_statistical_dimension(dim, alpha)
        est = statistical_dimension_mc(lambda x: project_circular_cone(x, alpha), dim, samples=40_000, seed=dim)
        assert abs(est.value - exact) <= SIGMAS * est.stderr, (dim, alpha, exact, est.value, est.stderr)


def test_circular_cone_special_angles_and_remainder():
    for dim in (1, 2, 3, 10, 1000, 100_000):
        # ray, self-dual cone (δ = D/2 exactly), half-space (δ = D − 1/2).
        assert circular_cone_statistical_dimension(dim, 0.0) == pytest.approx(0.5, rel=1e-9)
        if dim > 1:
            assert circular_cone_statistical_dimension(dim, math.pi / 4) == pytest.approx(dim / 2, rel=1e-9)
            assert circular_cone_statistical_dimension(dim, math.pi / 2) == pytest.approx(dim - 0.5, rel=1e-9)
    # Amelunxen et al. (2014) Prop. 3.4: δ = D sin²α + O(1). Measured remainder: inside (−1, 1)
    # for every D, and within 1e-2 of cos 2α once D ≥ 100 for α away from 0 and π/2.
    for dim in (2, 5, 100, 1000, 20_000):
        for alpha in np.linspace(0.0, math.pi / 2, 13):
            remainder = circular_cone_statistical_dimension(dim, alpha) - circular_cone_statistical_dimension_approx(
                dim, alpha
            )
            assert abs(remainder) < 1.0
            if dim >= 100 and 0.3 <= alpha <= 1.2:
                assert remainder == pytest.approx(math.cos(2 * alpha), abs=1e-2)


def circular_cone_by_radial_quadrature(dim, alpha):
    """``δ(Circ_D(α))`` by a route independent of the angle integral of the library: write
    ``g = (g₁, ρu)`` with ``ρ ~ χ_{D−1}``; for fixed ``ρ`` the ``g₁``-integral of ``‖Π(g)‖²`` (``g₁² + ρ²``
    inside the cone, ``(g₁ cos α + ρ sin α)²`` between it and its polar, 0 in the polar) is closed
    form in Φ and φ, leaving one quadrature over ``ρ``. For ``0 < α < π/2``, ``D ≥ 3``."""
    from scipy import integrate
    from scipy.special import ndtr

    c, s, k = math.cos(alpha), math.sin(alpha), dim - 1

    def phi(x):
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    def given(rho):
        top, bottom = rho * c / s, -rho * s / c
        tail = ndtr(-top)
        inside = tail * (1 + rho * rho) + top * phi(top)
        m0, m1 = ndtr(top) - ndtr(bottom), phi(bottom) - phi(top)
        m2 = m0 + bottom * phi(bottom) - top * phi(top)
        return inside + c * c * m2 + 2 * c * s * rho * m1 + (s * rho) ** 2 * m0

    log_norm = (1 - k / 2) * math.log(2) - gammaln(k / 2)
    mode = math.sqrt(k - 1)
    edges = sorted({0.0, mode + 40, *(mode + j for j in range(-12, 13) if mode + j > 0)})
    def integrand(rho):
        return math.exp(log_norm + (k - 1) * math.log(rho) - rho * rho / 2) * given(rho)

    return sum(integrate.quad(integrand, a, b, epsabs=1e-14, limit=200)[0] for a, b in zip(edges[:-1], edges[1:]))


def test_projected_ball_formula_underestimates_circular_cone():
    # A ball of radius r at distance R generates Circ_D(α) with sin α = r/R. The projected-
    # ellipsoid formula gives D r²/(R² + r²) = D sin²α/(1 + sin²α): against the exact
    # D sin²α + O(1) it is low by the factor 1/(1 + sin²α) only where D sin²α ≫ 1. At D = 2 000
    # the O(1) remainder (≈ cos 2α) still matters for small α: docs/theory.md §9 quotes these
    # relative errors, against large-D factors of −0.25 %, −3.8 %, −20 %, −39 % and −47.4 %.
    dim, distance = 2000, 1.0
    documented = {0.05: -0.1677, 0.2: -0.0494, 0.5: -0.2008, 0.8: -0.3901, 0.95: -0.4741}
    for sin_alpha, relative_error in documented.items():
        r = sin_alpha * distance
        approx = projected_ellipsoid_dimension(np.full(dim, r), distance)
        assert approx == pytest.approx(dim * r**2 / (distance**2 + r**2), rel=1e-12)
        exact = circular_cone_statistical_dimension(dim, math.asin(sin_alpha))
        assert exact == pytest.approx(circular_cone_by_radial_quadrature(dim, math.asin(sin_alpha)), rel=1e-9)
        assert approx < exact
        assert (approx - exact) / exact == pytest.approx(relative_error, abs=5e-5)
        # what remains beyond the large-D factor is the O(1) remainder, close to cos 2α
        assert exact - dim * sin_alpha**2 == pytest.approx(math.cos(2 * math.asin(sin_alpha)), abs=1e-2)
    # the large-D factor itself: at D = 10⁶ (D sin²α = 2 500 at sin α = 0.05) within 0.05 points
    for sin_alpha in (0.05, 0.2):
        exact = circular_cone_statistical_dimension(10**6, math.asin(sin_alpha))
        approx = 10**6 * sin_alpha**2 / (1 + sin_alpha**2)
        assert (approx - exact) / exact == pytest.approx(-(sin_alpha**2) / (1 + sin_alpha**2), abs=5e-4)


def test_spectral_dimension_equals_projected_ellipsoid_on_exact_spectrum():
    rng = np.random.default_rng(4)
    eigs = np.concatenate([np.zeros(40), -rng.lognormal(size=10), rng.lognormal(sigma=2, size=150)])
    spec = Spectrum.from_eigenvalues(eigs)
    eps = 0.01
    with np.errstate(divide="ignore"):
        semi_axes = np.sqrt(2 * eps / np.abs(eigs))
    for distance in (0.0, 0.01, 0.3, 5.0):
        est = spectral_statistical_dimension(spec, eps, distance)
        assert est.value == pytest.approx(projected_ellipsoid_dimension(semi_axes, distance), rel=1e-12)
    assert spectral_statistical_dimension(spec, eps, 0.0).value == pytest.approx(200)
    assert spectral_statistical_dimension(spec, eps, 1e8).value == pytest.approx(40, rel=1e-6)


def test_kinematic_margin():
    a = kinematic_margin(0.05)
    assert a == pytest.approx(math.sqrt(8 * math.log(80)))
    assert a / math.sqrt(2400) == pytest.approx(0.1209, abs=1e-4)
    assert a / math.sqrt(3e5) == pytest.approx(0.01081, abs=1e-5)
    for bad in (0, 1, -0.1, 1.5, "0.05"):
        with pytest.raises(PruningLimitsError, match="eta"):
            kinematic_margin(bad)


def test_projected_ellipsoid_dimension_at_extreme_scales():
    """Each term is ``1/(1 + (R/r)²)``: r²/(R² + r²) overflowed (NaN for r = 1e200, an
    OverflowError for R = 1e200) or underflowed (NaN for r = 0, R = 1e-200). Oracle: the same
    sum in exact rational arithmetic on the float64 inputs, rounded once."""
    from fractions import Fraction

    def exact(semi_axes, distance):
        total = Fraction(0)
        for r in semi_axes:
            if math.isinf(r):
                total += 1
            elif r > 0:
                total += Fraction(r) ** 2 / (Fraction(distance) ** 2 + Fraction(r) ** 2)
        return float(total)

    cases = [
        ([1e200], 1.0, 1.0), ([0.0], 1e-200, 0.0), ([1.0], 1e200, 0.0), ([1e200], 1e200, 0.5),
        ([1e-200], 1.0, 0.0), ([1.0], 1e-200, 1.0), ([5e-324], 5e-324, 0.5), ([1.7e308], 1.7e308, 0.5),
        ([0.0, math.inf, 1e300, 1e-300], 1.0, 2.0), ([1.0, 2.0, math.inf], 1.0, 1 / 2 + 4 / 5 + 1),
    ]
    for semi_axes, distance, expected in cases:
        value = projected_ellipsoid_dimension(semi_axes, distance)
        assert value == pytest.approx(expected, rel=1e-15, abs=0) == exact(semi_axes, distance), (semi_axes, distance)
    assert projected_ellipsoid_dimension([0.0, 1e300, math.inf], 0.0) == 3.0  # R = 0: D, as before
    rng = np.random.default_rng(8)
    r = 10.0 ** rng.uniform(-300, 300, size=200)
    r[::7] = 0.0
    for distance in 10.0 ** rng.uniform(-300, 300, size=20):
        assert projected_ellipsoid_dimension(r, distance) == pytest.approx(exact(r, distance), rel=1e-13, abs=0)


def test_ellipsoid_widths_at_extreme_scales():
    """‖r‖ was the norm of the unscaled semi-axes, inf for r = 1e200 and 0 for r = 1e-200: the
    bounds and the Monte-Carlo width scale with ``r`` (oracle: the same ellipsoid at scale 1 times
    the scale, and the width of a disc, r·sqrt(π/2))."""
    for scale in (1e-200, 1e200, 1e-300, 1.0e154, 1e300):
        lower, upper = ellipsoid_width_bounds([scale, scale])
        assert upper == pytest.approx(scale * math.sqrt(2), rel=1e-15, abs=0)
        assert lower == pytest.approx(scale * math.sqrt(2) * math.sqrt(2 / math.pi), rel=1e-15, abs=0)
        unit = ellipsoid_width_mc([1.0, 0.5, 3.0], samples=2000, seed=4)
        scaled = ellipsoid_width_mc([scale, 0.5 * scale, 3.0 * scale], samples=2000, seed=4)
        assert scaled.value == pytest.approx(scale * unit.value, rel=1e-13, abs=0)
        disc = ellipsoid_width_mc([scale, scale], samples=20_000, seed=1)
        assert abs(disc.value - scale * math.sqrt(math.pi / 2)) <= SIGMAS * disc.stderr
    assert ellipsoid_width_bounds([0.0, 0.0]) == (0.0, 0.0)
    assert ellipsoid_width_mc([0.0, 0.0], samples=10).value == 0.0
