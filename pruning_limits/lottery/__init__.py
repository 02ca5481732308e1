"""The neuron-vs-weight pruning gap, with certificates (THEORY §7; Ferré et al., arXiv 2603.02234).

Setting (ours, because the paper's full text is not at hand; stated in full in docs/gap.md):

- target ``f(x) = relu(<w, x>)``, ``w`` uniform on the unit sphere of ``R^d`` (seeded);
- a *stream* of hidden neurons ``(u_i, v_i)``, ``u_i ~ N(0, I_d)``, ``v_i ~ Uniform[-1, 1]``;
  the random network of width ``n`` is the first ``n`` neurons of the stream, so "the width
  pruning needs" is monotone in ``n`` and found by bisection;
- model ``"R"``: ``g(x) = relu(sum_i v_i relu(<u_i, x>))`` (output ReLU); model ``"L"``:
  ``g(x) = sum_i v_i relu(<u_i, x>)`` (linear output, the control);
- error: ``sup_{|x|=1} |f(x) - g(x)|``. Both sides are positively homogeneous, so the sphere is
  the whole story; at a point ``x`` off the sphere an ``ε``-approximation errs by at most
  ``ε |x|``, which is how every constraint below is written (float grid points are not exactly
  on the sphere).

What is certified, and how it can be re-checked (:func:`check_gap_record`):

- *weight pruning, upper bound*: the subset-sum construction of THEORY §7 gives masks of both
  layers for the first ``n`` neurons; the masked network's error is computed exactly
  (``d <= 2``) or bounded in closed form (``d > 2``, see :func:`separable_error_bound`) and is
  ``<= ε``. The masks are the certificate.
- *neuron pruning, lower bound*: every subset of the first ``n`` neurons is a 0/1 point of the
  LP relaxation written on any finite set of points; a non-negative combination of its
  constraints that is contradictory (a Farkas certificate, :func:`check_farkas`) proves that no
  subset of the first ``n`` neurons reaches ``ε``, so the width needed is ``>= n + 1``.
- *neuron pruning, exact minimum* (``d <= 2``, small widths): a MILP on points refined by
  cutting planes; its feasible answer is a subset whose exact error is ``<= ε`` (checkable); the
  infeasibility of the next smaller width is the MILP solver's claim on a finite point set
  (valid on the sphere because a finite point set only relaxes the problem), not a checkable
  certificate. The record says so.
"""

from .check import check_gap_record
from .error import SupError, certified_error, cube_grid, separable_error_bound, sup_error_exact
from .experiment import DEFAULT_EPSILONS, DEFAULT_EPSILONS_L, SETTING, fit_widths, gap_experiment
from .figure import gap_figure
from .milp import ExactNeuronWidth, milp_exact_width
from .network import MAX_WIDTH, MODELS, Stream, check_epsilon, make_stream, network, relu, target
from .relaxation import (
    CUT_TOLERANCE,
    FARKAS_TOLERANCE,
    FarkasCertificate,
    NeuronLowerBound,
    Relaxation,
    candidates,
    check_farkas,
    farkas_lp,
    farkas_margin,
    initial_points,
    lp_constraints,
    lp_lower_bound,
    violated_points,
)
from .weight import MAX_SUBSET_ITEMS, WeightCertificate, closest_subset_sum, subset_sum_construction, weight_pruning_width

__all__ = [
    "CUT_TOLERANCE", "DEFAULT_EPSILONS", "DEFAULT_EPSILONS_L", "FARKAS_TOLERANCE", "MAX_SUBSET_ITEMS", "MAX_WIDTH",
    "MODELS", "SETTING", "ExactNeuronWidth", "FarkasCertificate", "NeuronLowerBound", "Relaxation", "Stream",
    "SupError", "WeightCertificate", "candidates", "certified_error", "check_epsilon", "check_farkas",
    "check_gap_record", "closest_subset_sum", "cube_grid", "farkas_lp", "farkas_margin", "fit_widths",
    "gap_experiment", "gap_figure", "initial_points", "lp_constraints", "lp_lower_bound", "make_stream",
    "milp_exact_width", "network", "relu", "separable_error_bound", "subset_sum_construction",
    "sup_error_exact", "target", "violated_points", "weight_pruning_width",
]
