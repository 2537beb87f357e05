"""The marginal vote likelihood as one PyTensor Op, with its gradient from the E-step.

``MarginalVotes`` takes a count table (as arrays), the users per distinct row,
``log g`` and ``log(1 - g)`` per pair and node, and the log prior mass per
node, and returns

* ``total = sum_r weight_r log Z_r`` (the log-likelihood up to the binomial
  coefficients),
* ``log_z`` (R,), and the E-step sums ``W`` (G,), ``S`` and ``F`` (P, G).

The gradient needs no second pass: by Fisher's identity the derivative of
``total`` in ``log_mass_g`` is ``W_g``, in ``log g_pg`` it is ``S_pg`` and in
``log(1 - g_pg)`` it is ``F_pg``; PyTensor chains these to ``mu`` and to the
family's parameters. Both the Python ``perform`` and the Numba
implementation call the compiled kernel of :mod:`attnmodel.model.kernels`, so the
graph NUTS differentiates holds no (rows x nodes) tensor.

``MarginalVotesTies`` does the same with ties as evidence
(:mod:`attnmodel.model.ties`): each row's log mass is the prior's plus the tie
factor of its ``(m, T)``, formed inside the kernel from the terms' bases and
``log c``, ``log(1 - c)`` (:func:`attnmodel.model.ties.tie_pass`), and the
gradient in those comes from the E-step's node weights per key, passed back
through the tie factor's term shares in a second pass.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from attnmodel.model import kernels, ties
from attnmodel.model.workspace import work_buffer

__all__ = [
    "MarginalVotes",
    "MarginalVotesMu",
    "MarginalVotesTies",
    "marginal_votes",
    "marginal_votes_mu",
    "marginal_votes_ties",
]


class MarginalVotes(Op):
    """``(total, log_z, W, S, F)`` of the E-step; see the module docstring.

    ``spacing`` is the logit grid's central spacing when the nodes are one
    (rows then take strides of it, :func:`attnmodel.model.kernels.estep_stats`),
    0 for atoms.
    """

    __props__ = ("spacing",)

    def __init__(self, spacing: float = 0.0):
        self.spacing = float(spacing)

    def make_node(
        self, row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, log_mass
    ):
        ints = [
            pt.as_tensor_variable(x).astype("int64")
            for x in (row_ptr, entry_pair, entry_s, entry_f)
        ]
        floats = [
            pt.as_tensor_variable(x).astype("float64")
            for x in (row_weight, log_g, log_1mg, log_mass)
        ]
        for var, ndim, name in zip(
            ints + floats, (1, 1, 1, 1, 1, 2, 2, 1), self._input_names, strict=True
        ):
            if var.ndim != ndim:
                raise TypeError(f"{name} must have {ndim} dimension(s), got {var.ndim}")
        outputs = [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dmatrix(), pt.dmatrix()]
        return Apply(self, ints + floats, outputs)

    _input_names = (
        "row_ptr",
        "entry_pair",
        "entry_s",
        "entry_f",
        "row_weight",
        "log_g",
        "log_1mg",
        "log_mass",
    )

    def perform(self, node, inputs, output_storage):
        args = [np.ascontiguousarray(x) for x in inputs]
        out = _marginal_votes_kernel(*args, self.spacing)
        output_storage[0][0] = np.asarray(out[0])
        for i in range(1, 5):
            output_storage[i][0] = out[i]

    def infer_shape(self, node, shapes):
        row_ptr, _, _, _, _, log_g, _, log_mass = shapes
        return [(), (row_ptr[0] - 1,), log_mass, log_g, log_g]

    def connection_pattern(self, node):
        # Every output depends on every float input; the integer structure is not differentiable.
        return [[False] * 5] * 4 + [[True] * 5] * 4

    def pullback(self, inputs, outputs, cotangents):
        g_total = cotangents[0]
        for g in cotangents[1:]:
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError("only the total of MarginalVotes is differentiable")
        _, log_z, w, s, f = outputs
        # The integer count structure is not connected (see connection_pattern).
        return [
            *(DisconnectedType()() for _ in range(4)),
            g_total * log_z,
            g_total * s,
            g_total * f,
            g_total * w,
        ]


def _kernel_version() -> int:
    """A hash of the sources of this module, :mod:`attnmodel.model.kernels` and ``ties``."""
    src = (
        b"".join(Path(m.__file__).read_bytes() for m in (kernels, ties))
        + Path(__file__).read_bytes()
    )
    return int(hashlib.sha256(src).hexdigest()[:12], 16)


#: :func:`_kernel_version` at import. It keys PyTensor's Numba cache of the Ops
#: and Numba's own cache of the kernels below: Numba checks a cached function
#: against its own file only, so a kernel here kept the code of an older
#: ``kernels.py`` it calls. Each kernel is built as a closure over this number,
#: and Numba's cache key holds a hash of a function's closure cells: an edit of
#: any of the three files gives every kernel here a new key.
SOURCE_VERSION = _kernel_version()


def _votes_kernel_for(version: int):
    """:func:`_marginal_votes_kernel`, cached under ``version`` (:data:`SOURCE_VERSION`)."""

    @numba.njit(cache=True)
    def _marginal_votes_kernel(
        row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, log_mass, spacing
    ):
        """``(total, log_z, W, S, F)``: the serial E-step and the weighted sum of its ``log_z``."""
        version  # noqa: B018 - a closure cell: part of Numba's cache key
        log_z, w, s, f = kernels.estep_serial(
            row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, log_mass, spacing
        )
        total = kernels.weighted_total(row_weight, log_z)
        return total, log_z, w, s, f

    return _marginal_votes_kernel


_marginal_votes_kernel = _votes_kernel_for(SOURCE_VERSION)


# The three Ops' Numba implementations below state ``fastmath=False``. PyTensor's
# Numba backend compiles with fast-math flags by default, and Numba passes a
# caller's flags on to every callee that sets none of its own: the kernels would
# be compiled (and kept in Numba's cache, which does not key on the flags) with
# contracted and reassociated arithmetic, so their numbers would depend on which
# process compiled them first. Stated here, the kernels' own flags hold.
def _register_numba() -> None:
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    kernel = _marginal_votes_kernel

    @register_funcify_default_op_cache_key(MarginalVotes)
    def _numba_marginal_votes(op, node, **kwargs):
        spacing = op.spacing

        @numba_njit(fastmath=False)
        def marginal_votes(
            row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, log_mass
        ):
            total, log_z, w, s, f = kernel(
                row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, log_mass, spacing
            )
            return np.array(total), log_z, w, s, f

        # The spacing is compiled in; the default cache key holds the Op's props.
        return marginal_votes, SOURCE_VERSION


class MarginalVotesMu(Op):
    """``(total, log_z, W, d total / d mu)`` on a logit grid, from ``mu`` itself.

    The same log-likelihood as :class:`MarginalVotes` when ``log g`` and
    ``log(1 - g)`` come from ``mu``, with ``log g`` formed inside the kernel
    (:func:`attnmodel.model.kernels.marginal_votes_mu`) only on the nodes the
    rows reach, and the gradient in ``mu`` summed there: the graph around it
    holds no (pairs x nodes) tensor. The grid's ``eta`` and ``(1 - eta) / 2``
    are constants of the graph (not differentiated).
    """

    __props__ = ("spacing",)

    def __init__(self, spacing: float):
        self.spacing = float(spacing)

    def make_node(self, row_ptr, entry_pair, entry_s, entry_f, row_weight, mu, eta, half, log_mass):
        ints = [
            pt.as_tensor_variable(x).astype("int64")
            for x in (row_ptr, entry_pair, entry_s, entry_f)
        ]
        floats = [
            pt.as_tensor_variable(x).astype("float64")
            for x in (row_weight, mu, eta, half, log_mass)
        ]
        for var in ints + floats:
            if var.ndim != 1:
                raise TypeError(f"every input of MarginalVotesMu is a vector, got {var.ndim} dims")
        outputs = [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dvector()]
        return Apply(self, ints + floats, outputs)

    def perform(self, node, inputs, output_storage):
        args = [np.ascontiguousarray(x) for x in inputs]
        out = _mu_kernel(*args, self.spacing)
        output_storage[0][0] = np.asarray(out[0])
        for i in range(1, 4):
            output_storage[i][0] = out[i]

    def infer_shape(self, node, shapes):
        row_ptr, _, _, _, _, mu, _, _, log_mass = shapes
        return [(), (row_ptr[0] - 1,), log_mass, mu]

    def connection_pattern(self, node):
        # The counts and the grid's constants are not differentiated.
        return [[False] * 4] * 4 + [[True] * 4] * 2 + [[False] * 4] * 2 + [[True] * 4]

    def pullback(self, inputs, outputs, cotangents):
        g_total = cotangents[0]
        for g in cotangents[1:]:
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError("only the total of MarginalVotesMu is differentiable")
        _, log_z, w, grad_mu = outputs
        return [
            *(DisconnectedType()() for _ in range(4)),
            g_total * log_z,
            g_total * grad_mu,
            DisconnectedType()(),
            DisconnectedType()(),
            g_total * w,
        ]


def _mu_kernel_for(version: int):
    """:func:`_mu_kernel`, cached under ``version`` (:data:`SOURCE_VERSION`)."""

    @numba.njit(cache=True)
    def _mu_kernel(
        row_ptr, entry_pair, entry_s, entry_f, row_weight, mu, eta, half, log_mass, spacing
    ):
        """:func:`attnmodel.model.kernels.marginal_votes_mu` in this thread's work space."""
        version  # noqa: B018 - a closure cell: part of Numba's cache key
        need = kernels.mu_work_size(mu.size, log_mass.size)
        with numba.objmode(work="float64[::1]"):
            work = work_buffer(need)
        return kernels.marginal_votes_mu(
            row_ptr, entry_pair, entry_s, entry_f, row_weight, mu, eta, half, log_mass, spacing,
            work,
        )  # fmt: skip

    return _mu_kernel


_mu_kernel = _mu_kernel_for(SOURCE_VERSION)


def _register_numba_mu() -> None:
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    kernel = _mu_kernel

    @register_funcify_default_op_cache_key(MarginalVotesMu)
    def _numba_marginal_votes_mu(op, node, **kwargs):
        spacing = op.spacing

        @numba_njit(fastmath=False)
        def marginal_votes_mu(
            row_ptr, entry_pair, entry_s, entry_f, row_weight, mu, eta, half, log_mass
        ):
            total, log_z, w, grad = kernel(
                row_ptr, entry_pair, entry_s, entry_f, row_weight, mu, eta, half, log_mass, spacing
            )
            return np.array(total), log_z, w, grad

        return marginal_votes_mu, SOURCE_VERSION


_register_numba()
_register_numba_mu()


def _count_shared(counts):
    # Shared variables rather than constants: large constants would make the
    # compiled graph uncacheable (Numba treats big arrays as dynamic globals).
    names = ("row_ptr", "entry_pair", "entry_s", "entry_f")
    return [
        pytensor.shared(a, name=f"counts_{n}")
        for a, n in zip(kernels.count_arrays(counts), names, strict=True)
    ]


def marginal_votes_mu(counts, row_weight, mu, grid, log_mass):
    """``sum_r weight_r log Z_r`` on a logit grid with ``g = 1/2 + eta (mu - 1/2)``, as a tensor.

    Equal to :func:`marginal_votes` with ``log g`` and ``log(1 - g)`` formed
    from ``mu`` (see :class:`MarginalVotesMu`). For the tables
    :func:`attnmodel.model.kernels.fused_pays` accepts.

    Parameters
    ----------
    counts : CountTable
    row_weight : tensor (R,)
    mu : tensor (P,)
    grid : LogitGrid
    log_mass : tensor (G,)
    """
    eta = pytensor.shared(np.ascontiguousarray(grid.eta), name="grid_eta")
    half = pytensor.shared(np.ascontiguousarray(0.5 * grid.one_minus_eta), name="grid_half")
    op = MarginalVotesMu(grid.spacing)
    return op(*_count_shared(counts), row_weight, mu, eta, half, log_mass)[0]


def marginal_votes(counts, row_weight, log_g, log_1mg, log_mass, spacing: float = 0.0):
    """``sum_r weight_r log Z_r`` for a :class:`~attnmodel.data.counts.CountTable`, as a tensor.

    Parameters
    ----------
    counts : CountTable
        Supplies the rows' entries (shared variables of the graph).
    row_weight : tensor (R,)
        Users per distinct row (``pm.Data`` in the model, so it can change).
    log_g, log_1mg : tensor (P, G)
    log_mass : tensor (G,)
    spacing : float
        The logit grid's central spacing when the nodes are one, else 0.
    """
    return MarginalVotes(spacing)(
        *_count_shared(counts),
        row_weight,
        log_g,
        log_1mg,
        log_mass,
    )[0]


class MarginalVotesTies(Op):
    """``sum_r weight_r log Z_r`` with ties as evidence, and its gradient, in one kernel.

    Inputs: the count table's arrays, ``row_key`` (the row's ``(m, T)`` key),
    the tie terms' layout (``start``, ``kpm``, ``tmk``, see
    :meth:`attnmodel.model.ties.TieTerm.terms`), then ``row_weight`` (R,),
    ``log_g``, ``log_1mg`` (P, G) at the transformed nodes, the prior's
    ``log_mass`` (G,), the terms' ``base`` (K,) and ``log c``, ``log(1 - c)``
    (G,). Row ``r``'s log mass at node ``g`` is ``log_mass_g + tie[key_r, g]``,
    ``tie`` the log-sum-exp over each key's terms. Outputs: ``total``,
    ``log_z`` (R,), the node weights ``W`` (G,), ``S``, ``F`` (P, G) and the
    derivatives of ``total`` in ``base`` (K,), ``log c`` and ``log(1 - c)``
    (G,) (Fisher's identity through the tie factor).
    """

    __props__ = ()

    _n_ints = 6
    _float_ndims = (1, 1, 1, 2, 2, 1, 1, 1, 1)

    def make_node(self, row_ptr, entry_pair, entry_s, entry_f, row_key, start, kpm, tmk,
                  row_weight, log_g, log_1mg, log_mass, base, log_c, log_1mc):  # fmt: skip
        ints = [
            pt.as_tensor_variable(x).astype("int64")
            for x in (row_ptr, entry_pair, entry_s, entry_f, row_key, start)
        ]
        floats = [
            pt.as_tensor_variable(x).astype("float64")
            for x in (kpm, tmk, row_weight, log_g, log_1mg, log_mass, base, log_c, log_1mc)
        ]
        for var, ndim in zip(ints + floats, (1,) * 6 + self._float_ndims, strict=True):
            if var.ndim != ndim:
                raise TypeError(f"an input of MarginalVotesTies has {var.ndim} dims, not {ndim}")
        outputs = [
            pt.dscalar(), pt.dvector(), pt.dvector(), pt.dmatrix(), pt.dmatrix(),
            pt.dvector(), pt.dvector(), pt.dvector(),
        ]  # fmt: skip
        return Apply(self, ints + floats, outputs)

    def perform(self, node, inputs, output_storage):
        args = [np.ascontiguousarray(x) for x in inputs]
        out = _marginal_votes_ties_kernel(*args)
        output_storage[0][0] = np.asarray(out[0])
        for i in range(1, 8):
            output_storage[i][0] = out[i]

    def infer_shape(self, node, shapes):
        row_ptr = shapes[0]
        log_g, log_mass, base, log_c = shapes[9], shapes[11], shapes[12], shapes[13]
        return [(), (row_ptr[0] - 1,), log_mass, log_g, log_g, base, log_c, log_c]

    def connection_pattern(self, node):
        # The counts, the keys and the terms' layout are not differentiated.
        return [[False] * 8] * 8 + [[True] * 8] * 7

    def pullback(self, inputs, outputs, cotangents):
        g_total = cotangents[0]
        for g in cotangents[1:]:
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError("only the total of MarginalVotesTies is differentiable")
        _, log_z, w, s, f, d_base, d_lc, d_l1 = outputs
        return [
            *(DisconnectedType()() for _ in range(8)),
            g_total * log_z,
            g_total * s,
            g_total * f,
            g_total * w,
            g_total * d_base,
            g_total * d_lc,
            g_total * d_l1,
        ]


def _ties_kernel_for(version: int):
    """:func:`_marginal_votes_ties_kernel`, cached under ``version`` (:data:`SOURCE_VERSION`)."""

    @numba.njit(cache=True)
    def _marginal_votes_ties_kernel(
        row_ptr, entry_pair, entry_s, entry_f, row_key, start, kpm, tmk,
        row_weight, log_g, log_1mg, log_mass, base, log_c, log_1mc,
    ):  # fmt: skip
        """The outputs of :class:`MarginalVotesTies`: tie factor, E-step, the terms' shares."""
        version  # noqa: B018 - a closure cell: part of Numba's cache key
        n_keys = start.size - 1
        n_nodes = log_mass.size
        lc = np.ascontiguousarray(log_c).reshape(1, n_nodes)
        l1 = np.ascontiguousarray(log_1mc).reshape(1, n_nodes)
        empty = np.zeros(0)
        tie = np.empty((n_keys, n_nodes))
        ties.tie_pass(start, base, kpm, tmk, lc, l1, np.zeros((0, 0)), empty, tie,
                      empty, empty, empty, empty)  # fmt: skip
        for d in range(n_keys):
            for g in range(n_nodes):
                tie[d, g] += log_mass[g]
        # Every row on the full grid (no strides), as in MAP-EM with ties.
        log_z, w_key, s, f = kernels.estep_serial_keys(
            row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, tie, row_key, 0.0
        )
        total = kernels.weighted_total(row_weight, log_z)
        # The node weights per key are the derivatives in each key's log mass, hence
        # in its tie factor: the terms' shares carry them to base, log c, log(1 - c).
        d_base = np.zeros(base.size)
        d_lc = np.zeros(n_nodes)
        d_l1 = np.zeros(n_nodes)
        ties.tie_pass(start, base, kpm, tmk, lc, l1, w_key, empty, tie, d_base, empty, d_lc, d_l1)
        return total, log_z, w_key.sum(axis=0), s, f, d_base, d_lc, d_l1

    return _marginal_votes_ties_kernel


_marginal_votes_ties_kernel = _ties_kernel_for(SOURCE_VERSION)


def _register_numba_ties() -> None:
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    kernel = _marginal_votes_ties_kernel

    @register_funcify_default_op_cache_key(MarginalVotesTies)
    def _numba_marginal_votes_ties(op, node, **kwargs):
        @numba_njit(fastmath=False)
        def marginal_votes_ties(
            row_ptr, entry_pair, entry_s, entry_f, row_key, start, kpm, tmk,
            row_weight, log_g, log_1mg, log_mass, base, log_c, log_1mc,
        ):  # fmt: skip
            total, log_z, w, s, f, d_base, d_lc, d_l1 = kernel(
                row_ptr, entry_pair, entry_s, entry_f, row_key, start, kpm, tmk,
                row_weight, log_g, log_1mg, log_mass, base, log_c, log_1mc,
            )  # fmt: skip
            return np.array(total), log_z, w, s, f, d_base, d_lc, d_l1

        return marginal_votes_ties, SOURCE_VERSION


_register_numba_ties()


def marginal_votes_ties(counts, term, row_weight, log_g, log_1mg, log_mass, base, log_c, log_1mc):
    """``sum_r weight_r log Z_r`` with ties as evidence, as a tensor (:class:`MarginalVotesTies`).

    Parameters
    ----------
    counts : CountTable
    term : TieTerm
        The rows' ``(m, T)`` keys and their terms (shared variables of the graph).
    row_weight : tensor (R,)
    log_g, log_1mg : tensor (P, G)
        At the transformed nodes ``eta' = eta / c``.
    log_mass : tensor (G,)
    base : tensor (K,)
        ``log C(T, k) + log B(a + k, b + m) - log B(a, b)`` per term.
    log_c, log_1mc : tensor (G,)
    """
    layout = term.terms()
    consts = [
        pytensor.shared(np.ascontiguousarray(term.row_key, dtype=np.int64), name="tie_row_key"),
        pytensor.shared(layout["start"], name="tie_start"),
        pytensor.shared(np.ascontiguousarray(layout["kpm"]), name="tie_kpm"),
        pytensor.shared(np.ascontiguousarray(layout["tmk"]), name="tie_tmk"),
    ]
    return MarginalVotesTies()(
        *_count_shared(counts), *consts, row_weight, log_g, log_1mg, log_mass, base, log_c, log_1mc
    )[0]
