"""Fused scans with hand-written BPTT for fields f(h, u) = act(A h + u), u = V x + b held per sample.

Explicit Runge-Kutta (``tanh_rk_scan``). One step of size dt of the tableau (c, A_rk, b_rk) with s stages
(written a_il, b_i), ``substeps`` steps per input sample, every stage seeing the held input u_k of its sample:

    Y_i = y + dt * sum_{l<i} a_il k_l,   k_i = act(Y_i A^T, u_k),   y' = y + dt * sum_i b_i k_i,

with act(s, u) = tanh(s + u) (AntisymmetricRNN, eq. 12) or, ``gated``, u = [u_z, u_h] and
act(s, u) = sigmoid(s + u_z) * tanh(s + u_h) (gated AntisymmetricRNN, eq. 13: A shared by gate and update,
one matmul per stage). Forward Euler (s = 1, Y_1 = y) is the papers' recurrence; it is the one-stage case of
the same walk. The backward walks each step's stages in reverse, with gy' = dL/dy':

    gk_i = dt * (b_i gy' + sum_{l>i} a_li gY_l),   gs_i = d act / d s (gk_i),   gY_i = gs_i A,
    gy = gy' + sum_i gY_i,

one matmul per stage and one fused elementwise pass (aten's tanh_backward) for tanh; the gated activation
keeps [gate, update] from the forward, so its backward is a few products (the gradient of [u_z, u_h]) and
one add (gs_i). The activation is a pair of small pieces (``TanhActivation``, ``GatedTanhActivation``) that
the one tableau walk calls. Only the states and the per-stage records are kept for the backward: k_i is a
function of its record, so the stage inputs Y_i are formed again from the states when the weight gradient
needs them.

Partitioned (Gauss-Seidel) Euler (``tanh_gauss_seidel_scan``) over blocks h = (h_1, ..., h_m) with rows
C_i of the coupling matrix C (the scheme of ``solvers.partitioned_euler_step``; Hairer, Lubich, Wanner,
*Geometric Numerical Integration*, eq. I.1.9, for two blocks):

    y_i' = y_i + dt * tanh(z_i C_i^T + u_i),   z_i = (y_1', ..., y_{i-1}', y_i, ..., y_m),

computed in place in the next state's row (z_i is that row just before block i is written), and its
adjoint walks the blocks in reverse on one gradient row: gs_i = tanh'(.) g_i (g_i the block i columns),
g += dt gs_i C_i, also in place.

Both are ``torch.autograd.Function``s whose hand-written backward is differentiable once. The gradient of
A (C) is the sum over all steps and stages of gs_i^T Y_i: the compiled RK walk accumulates it step by step,
one product with K = s B while a step's gs_i and Y_i are in cache (so that neither is ever written to
memory); the Python walks form it as one large matmul per stage at the end (two per block for Gauss-Seidel).
Those of x, V and b are large products of g_u = dL/du summed over each sample's stages and substeps
(``input_gradients``), or, where the compiled walk formed u from x itself, reductions it makes as each
sample's g_u is complete (``walked_input_gradients``). The last state is a separate output, so a loss on h_T
alone (a classifier) adds nothing per step.

The time loops themselves (the walks) exist twice with one signature: ``PythonWalks`` here and the compiled
``csrc/fused_walks.cpp`` (``odernn.kernels`` chooses, once per process), which does each stage's elementwise
work in one vectorised pass. The input projection happens inside, so the work buffers (projected inputs,
states, stage records, pre-activation gradients) never leave this module and are reused across calls from a
small pool: fresh buffers of this size cost page faults on every call. Saved buffers return to the pool only
when the autograd node that saved them is freed, so retained graphs and repeated backward passes stay
correct, and a returned buffer (the states) is handed out again only once its caller has let go of it. The
scans equal the generic ``solvers.rk_step`` and ``solvers.partitioned_euler_step`` scans (tested to
rounding, and by gradcheck in float64), under either walk.
"""
from __future__ import annotations

import math
import weakref
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from solvers import ButcherTableau

from . import kernels

tanh_backward = torch.ops.aten.tanh_backward.grad_input
sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input


class BufferPool:
    """Free work buffers (whole storages) by dtype and device; at most ``capacity`` kept, the oldest dropped
    first. A request takes the smallest free buffer with room for it, so scans of different lengths, stage
    counts and batch sizes share the same few buffers instead of each faulting in fresh pages."""

    def __init__(self, capacity: int = 6) -> None:
        self.capacity = capacity
        self.free: list[Tensor] = []

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        size = math.prod(shape)
        fits = [i for i, buffer in enumerate(self.free)
                if 0 < size <= buffer.numel() and buffer.dtype == like.dtype and buffer.device == like.device
                and not shared(buffer)]
        if not fits:
            return like.new_empty(shape)
        best = min(fits, key=lambda i: self.free[i].numel())
        return self.free.pop(best)[:size].view(shape)

    def give(self, buffer: Tensor) -> None:
        """Keep the whole storage of ``buffer`` for reuse; empty ones (Euler's stage inputs) are not kept."""
        if buffer.numel():
            self.free.append(buffer.new_empty(0).set_(buffer.untyped_storage()))
            del self.free[:-self.capacity]


POOL = BufferPool()


def shared(buffer: Tensor) -> bool:
    """Whether a pooled buffer's storage is still referenced outside the pool (e.g. the states a scan returned
    and its caller kept): such a buffer is not handed out again. Where torch cannot tell, it counts as shared."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    return use_count is None or use_count(buffer.untyped_storage()._cdata) > 2  # the pool's tensor + this view


def combine(terms: Sequence[tuple[float, Tensor]], out: Tensor, alias: bool = False) -> Tensor:
    """sum_i c_i t_i over the terms with c_i != 0 (zero if none), written into ``out`` with one elementwise
    kernel per term (a term with c = 1 goes first, to be the ``input`` of a fused add); with ``alias`` a lone
    term with c = 1 is returned itself (no kernel)."""
    terms = sorted(((c, t) for c, t in terms if c != 0.0), key=lambda term: term[0] != 1.0)
    if not terms:
        return out.zero_()
    (c0, t0), rest = terms[0], terms[1:]
    if c0 == 1.0 and not rest and alias:
        return t0
    if c0 == 1.0 and rest:
        torch.add(t0, rest[0][1], alpha=rest[0][0], out=out)
        rest = rest[1:]
    else:
        torch.mul(t0, c0, out=out)
    for c, t in rest:
        out.add_(t, alpha=c)
    return out


class TanhActivation:
    """k = tanh(Y A^T + u). The record kept per stage for the backward is k itself (tanh' = 1 - k^2); the
    gradient of u is that of the pre-activation s = Y A^T, so both live in one buffer."""

    width = 1  # columns of u (and of the record) per state unit

    def __init__(self, stages: int, batch: int, n: int, like: Tensor) -> None:
        pass

    def forward(self, i: int, u: Tensor, y: Tensor, matrix_t: Tensor, record: Tensor) -> Tensor:
        """k_i of stage ``i`` from its input ``y`` (B, n) and held input ``u``, writing ``record``."""
        torch.addmm(u, y, matrix_t, out=record)
        return record.tanh_()

    @staticmethod
    def output(record: Tensor) -> Tensor:
        """k from its record (any leading dimensions)."""
        return record

    @staticmethod
    def backward(grad_k: Tensor, record: Tensor, grad_u: Tensor, grad_s: Optional[Tensor]) -> Tensor:
        """Writes dL/du into ``grad_u`` and returns dL/ds (here the same tensor)."""
        return tanh_backward(grad_k, record, grad_input=grad_u)


class GatedTanhActivation:
    """k = sigmoid(s + u_z) * tanh(s + u_h), s = Y A^T, u = [u_z, u_h] (B, 2n). The record is the pair
    [gate, update] = [sigmoid(s + u_z), tanh(s + u_h)] (B, 2n): k is their product, and the backward's
    dL/du = [gk update sigmoid'(.), gk gate tanh'(.)] and dL/ds = the sum of its halves. The stage outputs
    k_i of the current step live in a small scratch buffer (only the step needs them)."""

    width = 2

    def __init__(self, stages: int, batch: int, n: int, like: Tensor) -> None:
        self.pre = like.new_empty(batch, n)
        self.gates = like.new_empty(2, batch, n)  # contiguous halves: tanh_ of a strided half is slow threaded
        self.ks = like.new_empty(stages, batch, n)

    def forward(self, i: int, u: Tensor, y: Tensor, matrix_t: Tensor, record: Tensor) -> Tensor:
        torch.mm(y, matrix_t, out=self.pre)
        batch, n = self.pre.shape
        gate, update = torch.add(u.view(batch, 2, n).transpose(0, 1), self.pre, out=self.gates).unbind(0)
        gate.sigmoid_()
        update.tanh_()
        record.view(batch, 2, n).copy_(self.gates.transpose(0, 1))
        return torch.mul(gate, update, out=self.ks[i])

    @staticmethod
    def output(record: Tensor) -> Tensor:
        n = record.shape[-1] // 2
        return record[..., :n] * record[..., n:]

    @staticmethod
    def backward(grad_k: Tensor, record: Tensor, grad_u: Tensor, grad_s: Optional[Tensor]) -> Tensor:
        batch, n = grad_k.shape
        gate, update = record.view(batch, 2, n).unbind(1)
        grad_gate, grad_update = grad_u.view(batch, 2, n).unbind(1)
        sigmoid_backward(grad_k * update, gate, grad_input=grad_gate)
        tanh_backward(grad_k * gate, update, grad_input=grad_update)
        return torch.add(grad_gate, grad_update, out=grad_s)


def check_explicit(tableau: ButcherTableau) -> None:
    if any(a != 0.0 for i, row in enumerate(tableau.A) for a in row[i:]):
        raise ValueError(f"the fused scan walks explicit tableaus only; {tableau.name!r} has a nonzero entry on "
                         f"or above the diagonal of A (an implicit method)")


def input_gradients(ctx, grad_u: Tensor, x: Tensor, weight: Tensor, dt: float) -> list[Optional[Tensor]]:
    """dL/dx, dL/dV and dL/db from g = dL/du / dt (T, B, w) of every sample (its stages and substeps summed:
    the held u_k is seen by all of them), as three large products after the walk: dL/dx_k = dt g_k V,
    dL/dV = dt sum_k g_k^T x_k, dL/db = dt sum of g's rows."""
    need_x, need_weight, need_bias = ctx.needs_input_grad[1:4]
    flat = grad_u.reshape(-1, grad_u.shape[-1])
    return [(grad_u @ weight).mul_(dt) if need_x else None,
            (flat.T @ x.reshape(-1, x.shape[-1])).mul_(dt) if need_weight else None,
            flat.sum(0).mul_(dt) if need_bias else None]


def walked_input_gradients(ctx, grad_inputs: Tensor, grad_input_weight: Optional[Tensor], x: Tensor,
                           weight: Tensor, dt: float) -> list[Optional[Tensor]]:
    """dL/dx, dL/dV and dL/db after a reverse walk: from g = dL/du / dt per sample (``input_gradients``), or,
    where the walk formed u = [x, 1] [V^T; b] itself (``held_inputs``), from the dL/dx / dt (T, B, m) and
    dL/d[V^T; b] / dt (m + 1, w) it formed while g was in cache."""
    if grad_input_weight is None:
        return input_gradients(ctx, grad_inputs, x, weight, dt)
    return [grad_inputs.mul_(dt), grad_input_weight[:-1].T.mul(dt), grad_input_weight[-1].mul(dt)]


def gradient_start(grad_last: Optional[Tensor], like: Tensor) -> Tensor:
    """The reverse walk's starting gradient dL/dh_T in a buffer of its own (contiguous, written in place by the
    walks): zeros where the last state's gradient is undefined."""
    return torch.zeros_like(like) if grad_last is None else grad_last.clone(memory_format=torch.contiguous_format)


def per_sample(grad: Tensor, length: int) -> Tensor:
    """(stages, steps, B, w) gradients summed over the stages and the substeps of each of ``length`` samples:
    (T, B, w) (a view when there is one of each)."""
    stages, steps, batch, width = grad.shape
    if stages == 1 and steps == length:
        return grad[0]
    return grad.view(stages, length, steps // length, batch, width).sum((0, 2))


INLINE_FEATURES = 8
"""Up to this many input features the compiled walk forms u = V x + b inside its pass (m + 1 multiply-adds
per value) instead of reading a (T, B, w n) projection written by one matrix product beforehand: at m = 1
that product (k = 1) and its 51 MB of traffic cost a quarter of an Euler scan (T = 784, B = H = 128)."""


def held_inputs(x: Tensor, weight: Tensor, bias: Tensor, walker) -> tuple[Tensor, Optional[Tensor]]:
    """What ``walker``'s forward walk reads as its inputs: the projection u = x V^T + b (T, B, rows of V) in a
    pool buffer and None, or, for the compiled walks and at most ``INLINE_FEATURES`` features, the augmented
    [x, 1] (T, B, m + 1) and [V^T; b] (m + 1, rows of V), from which the walk forms u itself."""
    if walker is not kernels.compiled_ops() or x.shape[-1] > INLINE_FEATURES:
        return project(x, weight, bias), None
    ones = x.new_ones(*x.shape[:-1], 1)
    return torch.cat([x, ones], -1), torch.cat([weight.T, bias[None]], 0).contiguous()


def project(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """u = x V^T + b for every sample, (T, B, rows of V), in a pool buffer."""
    projected = POOL.take((x.shape[0], x.shape[1], weight.shape[0]), x)
    torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.T, out=projected.view(-1, weight.shape[0]))
    return projected


class PythonWalks:
    """The fused scans' time loops in Python; ``csrc/fused_walks.cpp`` holds the same walks compiled, with
    the same signatures (``odernn.kernels`` picks one). Every walk writes into the caller's buffers."""

    @staticmethod
    def rk_forward(states: Tensor, inputs: Tensor, input_weight: Optional[Tensor], matrix: Tensor,
                   records: Tensor, a: Sequence[float], b: Sequence[float], dt: float, substeps: int,
                   gated: bool) -> None:
        """states (steps + 1, B, n) with states[0] = h0; inputs the projected u (T, B, w n), or with
        ``input_weight`` = [V^T; b] (m + 1, w n) the augmented [x, 1] (T, B, m + 1) (``held_inputs``);
        records (s, steps, B, w n) (the activation's: k_i is ``act.output`` of it); a the s x s tableau
        row-major. A step's stage inputs Y_2..Y_s live in a scratch buffer; the backward forms them again."""
        projected = inputs if input_weight is None else inputs @ input_weight
        steps, batch, n = states.shape[0] - 1, states.shape[1], states.shape[2]
        stages = len(b)
        act = (GatedTanhActivation if gated else TanhActivation)(stages, batch, n, states)
        matrix_t = matrix.T
        ys, us, rec = states.unbind(0), projected.unbind(0), [r.unbind(0) for r in records]
        inputs = [None, *states.new_empty(stages - 1, batch, n).unbind(0)]
        rows = [[(dt * a[i * stages + l], l) for l in range(i) if a[i * stages + l] != 0.0] for i in range(stages)]
        weights = [(dt * w, i) for i, w in enumerate(b) if w != 0.0]
        ks: list[Tensor] = [ys[0]] * stages
        for j in range(steps):
            y, u = ys[j], us[j // substeps]
            for i in range(stages):
                stage_input = y if i == 0 else combine([(1.0, y)] + [(c, ks[l]) for c, l in rows[i]], inputs[i])
                ks[i] = act.forward(i, u, stage_input, matrix_t, rec[i][j])
            combine([(1.0, y)] + [(c, ks[i]) for c, i in weights], ys[j + 1])

    @staticmethod
    def rk_backward(grad_h: Tensor, grad_states: Optional[Tensor], states: Tensor, records: Tensor,
                    matrix: Tensor, inputs: Optional[Tensor], input_weight: Optional[Tensor], grad_inputs: Tensor,
                    grad_input_weight: Optional[Tensor], grad_matrix: Optional[Tensor], a: Sequence[float],
                    b: Sequence[float], dt: float, substeps: int, gated: bool) -> Tensor:
        """Returns dL/dh0 from ``grad_h`` = dL/dh_steps (used as a work buffer); writes g = dL/du / dt per
        input sample (its stages and substeps summed, ``per_sample``) into ``grad_inputs`` (T, B, w n) or, with
        the forward's augmented ``inputs`` [x, 1] and ``input_weight`` [V^T; b], dL/dx / dt = g V into
        ``grad_inputs`` (T, B, m) and dL/d[V^T; b] / dt = sum_k [x_k, 1]^T g_k into ``grad_input_weight``; and, if
        given, dL/dA / dt = sum over steps and stages of gs_i^T Y_i into ``grad_matrix`` (n, n), with gs_i =
        dL/ds_i / dt kept for every step here (a pool buffer) and the stage inputs Y_i formed again from the
        states and records, so that the weight gradient is one large product per stage. Per step gy' sits in
        ``grad_h`` and gy is accumulated into ``grad_next`` (two buffers, swapped; the first stage written
        writes gy' + gY_s, no copy). A stage whose gY_i enters some gk_p (a_ip != 0, p < i) keeps
        scale_i * gY_i / dt in ``kept``, scale_i = dt * a_ip for the largest such p, so gk_p / dt = b_p gy' +
        kept_i is one fused add."""
        act = GatedTanhActivation if gated else TanhActivation
        stages, steps, batch, width = records.shape
        a = [list(a[i * stages:(i + 1) * stages]) for i in range(stages)]
        scale = [dt * next((c for c in reversed(row[:i]) if c != 0.0), 0.0) for i, row in enumerate(a)]
        uses = [[(dt * a[l][i] / scale[l], l) for l in range(i + 1, stages) if a[l][i] != 0.0]
                for i in range(stages)]  # gk_i / dt = b_i gy' + sum_l uses * kept_l
        grad_next = torch.empty_like(grad_h)
        kept = grad_h.new_empty(stages, *grad_h.shape)
        grad_k = torch.empty_like(grad_h)
        grad_s = POOL.take((stages, steps, batch, grad_h.shape[1]), records)
        grad_u = POOL.take((stages, steps, batch, width), records) if gated else None
        rec, gs = [r.unbind(0) for r in records], [g.unbind(0) for g in grad_s]
        gu = gs if grad_u is None else [g.unbind(0) for g in grad_u]
        for j in reversed(range(steps)):
            if grad_states is not None and (j + 1) % substeps == 0:
                grad_h.add_(grad_states[(j + 1) // substeps - 1])
            first = True  # grad_next not yet written this step: the first write adds grad_h
            for i in reversed(range(stages)):
                terms = [(b[i], grad_h)] + [(c, kept[l]) for c, l in uses[i]]
                g = act.backward(combine(terms, grad_k, alias=True), rec[i][j], gu[i][j], gs[i][j])
                if scale[i]:
                    torch.addmm(kept[i], g, matrix, beta=0.0, alpha=scale[i], out=kept[i])
                    if first:
                        torch.add(grad_h, kept[i], alpha=dt / scale[i], out=grad_next)
                    else:
                        grad_next.add_(kept[i], alpha=dt / scale[i])
                elif first:
                    torch.addmm(grad_h, g, matrix, alpha=dt, out=grad_next)
                else:
                    grad_next.addmm_(g, matrix, alpha=dt)
                first = False
            grad_h, grad_next = grad_next, grad_h
        sample = per_sample(grad_s if grad_u is None else grad_u, grad_inputs.shape[0])
        if input_weight is None:
            grad_inputs.copy_(sample)
        else:
            torch.matmul(sample, input_weight[:-1].T, out=grad_inputs)
            torch.mm(inputs.reshape(-1, inputs.shape[-1]).T, sample.reshape(-1, width), out=grad_input_weight)
        if grad_matrix is not None:
            n, y = grad_h.shape[1], states[:-1]
            torch.mm(grad_s[0].reshape(-1, n).T, y.reshape(-1, n), out=grad_matrix)
            outputs = [act.output(r) for r in records[:-1]]
            for i in range(1, stages):
                stage_input = y.clone()
                for l in range(i):
                    if a[i][l] != 0.0:
                        stage_input.add_(outputs[l], alpha=dt * a[i][l])
                grad_matrix.addmm_(grad_s[i].reshape(-1, n).T, stage_input.view(-1, n))
        for buffer in (grad_s, grad_u):
            if buffer is not None:
                POOL.give(buffer)
        return grad_h

    @staticmethod
    def gs_forward(states: Tensor, projected: Tensor, matrix: Tensor, acts: Tensor, sizes: Sequence[int],
                   dt: float, substeps: int) -> None:
        """Partitioned Euler: states (steps + 1, B, n) with states[0] = h0, projected (T, B, n), acts the
        block-major tanh outputs (steps * B * n)."""
        steps, batch, n = states.shape[0] - 1, states.shape[1], states.shape[2]
        act = TanhActivation(1, batch, n, states)
        blocks = [slice(o, o + s) for o, s in zip(offsets(sizes), sizes)]
        transposed = [matrix[block].T for block in blocks]  # C_i^T (n, n_i)
        ks = [block_major(acts, block, steps, batch).unbind(0) for block in blocks]
        us = [projected[:, :, block].unbind(0) for block in blocks]
        ys, parts = states.unbind(0), [states[:, :, block].unbind(0) for block in blocks]
        tail = states[:, :, sizes[0]:].unbind(0)
        for j in range(steps):
            y, nxt = ys[j], ys[j + 1]
            if len(sizes) > 1:
                tail[j + 1].copy_(tail[j])  # blocks after the first still old in the row that becomes z_2
            for i in range(len(blocks)):
                k = act.forward(0, us[i][j // substeps], y if i == 0 else nxt, transposed[i], ks[i][j])
                if i == 0:
                    torch.add(parts[i][j], k, alpha=dt, out=parts[i][j + 1])
                else:
                    parts[i][j + 1].add_(k, alpha=dt)

    @staticmethod
    def gs_backward(grad_h: Tensor, grad_states: Optional[Tensor], acts: Tensor, grad_u: Tensor, matrix: Tensor,
                    sizes: Sequence[int], dt: float, substeps: int) -> None:
        """One gradient row ``grad_h`` (dL/dh_steps in, dL/dh0 out), updated in place block by block in
        reverse; ``grad_u`` (steps, B, n) receives dL/du / dt = dL/ds / dt of every step."""
        steps, batch = grad_u.shape[0], grad_u.shape[1]
        blocks = [slice(o, o + s) for o, s in zip(offsets(sizes), sizes)]
        rows = [matrix[block] for block in blocks]  # C_i (n_i, n)
        ks = [block_major(acts, block, steps, batch).unbind(0) for block in blocks]
        gu_blocks = [grad_u[:, :, block].unbind(0) for block in blocks]
        grad_blocks = [grad_h[:, block] for block in blocks]
        for j in reversed(range(steps)):
            if grad_states is not None and (j + 1) % substeps == 0:
                grad_h.add_(grad_states[(j + 1) // substeps - 1])
            for i in reversed(range(len(blocks))):
                g = TanhActivation.backward(grad_blocks[i], ks[i][j], gu_blocks[i][j], None)
                grad_h.addmm_(g, rows[i], alpha=dt)


def walks(device: torch.device, python: type = PythonWalks):
    """The walks a scan on ``device`` runs: the compiled ones where ``odernn.kernels`` provides them, else
    ``python``, a class holding the same walks in Python under the same names and signatures."""
    ops = kernels.compiled_ops() if device.type == "cpu" else None
    return python if ops is None else ops


class TanhRKScan(torch.autograd.Function):
    """``apply(h0 (B, n), x (T, B, m), V (w n, m), b (w n,), A (n, n), dt, tableau, substeps, gated)``
    ``-> (states (T, B, n), h_T)``; w = 2 when ``gated`` (u = [u_z, u_h]), else 1."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                tableau: ButcherTableau, substeps: int, gated: bool) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], h0.shape[1]
        steps, stages, width = length * substeps, tableau.stages, 2 if gated else 1
        a = [float(c) for row in tableau.A for c in row]
        b = [float(c) for c in tableau.b]
        walker = walks(h0.device)
        inputs, input_weight = held_inputs(x, weight, bias, walker)
        states = POOL.take((steps + 1, batch, n), h0)  # reused only once nothing outside holds it
        records = POOL.take((stages, steps, batch, width * n), h0)
        states[0] = h0
        walker.rk_forward(states, inputs, input_weight, matrix, records, a, b, dt, substeps, gated)
        if input_weight is None:
            POOL.give(inputs)
            inputs = None
        for buffer in (states, records):
            weakref.finalize(ctx, POOL.give, buffer)
        ctx.save_for_backward(states, records, x, weight, matrix, inputs, input_weight)
        ctx.walker = walker  # the records are the walk's: its own backward reads them
        ctx.dt, ctx.a, ctx.b, ctx.substeps, ctx.gated = dt, a, b, substeps, gated
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        """The walk leaves dL/dA / dt in ``grad_matrix`` and the inputs' gradients (``walked_input_gradients``)
        in ``grad_inputs`` (and ``grad_input_weight``)."""
        states, records, x, weight, matrix, inputs, input_weight = ctx.saved_tensors
        dt = ctx.dt
        batch, width = records.shape[2], records.shape[3]
        grad_h = gradient_start(grad_last, states[0])
        grad_states = None if grad_states is None else grad_states.contiguous()  # the walks read it row by row
        if input_weight is None:
            grad_inputs, grad_input_weight = POOL.take((x.shape[0], batch, width), records), None
        else:
            grad_inputs, grad_input_weight = torch.empty_like(x), torch.empty_like(input_weight)
        grad_matrix = torch.empty_like(matrix) if ctx.needs_input_grad[4] else None
        grad_h0 = ctx.walker.rk_backward(grad_h, grad_states, states, records, matrix, inputs, input_weight,
                                         grad_inputs, grad_input_weight, grad_matrix, ctx.a, ctx.b, dt,
                                         ctx.substeps, ctx.gated)
        grads = [grad_h0, *walked_input_gradients(ctx, grad_inputs, grad_input_weight, x, weight, dt),
                 None if grad_matrix is None else grad_matrix.mul_(dt)]
        if input_weight is None:
            POOL.give(grad_inputs)
        return (*grads, None, None, None, None)


class TanhGaussSeidelScan(torch.autograd.Function):
    """``apply(h0 (B, n), x (T, B, m), V (n, m), b (n,), C (n, n), dt, sizes, substeps)``
    ``-> (states (T, B, n), h_T)``: partitioned Euler over blocks of ``sizes``. The tanh outputs are kept
    block-major, each block's (steps, B, n_i) contiguous (tanh_ of a strided column block is slow threaded)."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                sizes: tuple[int, ...], substeps: int) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], h0.shape[1]
        steps = length * substeps
        projected = project(x, weight, bias)
        states = POOL.take((steps + 1, batch, n), h0)
        acts = POOL.take((steps * batch * n,), h0)
        states[0] = h0
        walks(h0.device).gs_forward(states, projected, matrix, acts, list(sizes), dt, substeps)
        POOL.give(projected)
        for buffer in (states, acts):
            weakref.finalize(ctx, POOL.give, buffer)
        ctx.save_for_backward(states, acts, x, weight, matrix)
        ctx.dt, ctx.sizes, ctx.substeps = dt, sizes, substeps
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        """The walk leaves dL/du / dt = dL/ds / dt of every step in ``grad_u``. dL/dC_i = dt sum gs_i^T z_i
        with z_i's columns before block i from the new state and the rest from the old one: two large
        matmuls per block at the end."""
        states, acts, x, weight, matrix = ctx.saved_tensors
        dt, sizes, substeps = ctx.dt, ctx.sizes, ctx.substeps
        steps, batch, n = states.shape[0] - 1, states.shape[1], states.shape[2]
        grad_h = gradient_start(grad_last, states[0])
        grad_states = None if grad_states is None else grad_states.contiguous()  # the walks read it row by row
        grad_u = POOL.take((steps, batch, n), acts)
        walks(states.device).gs_backward(grad_h, grad_states, acts, grad_u, matrix, list(sizes), dt, substeps)
        grads = [grad_h, *input_gradients(ctx, per_sample(grad_u.unsqueeze(0), x.shape[0]), x, weight, dt), None]
        if ctx.needs_input_grad[4]:
            grad_c = matrix.new_empty(matrix.shape)
            flat_g = grad_u.view(-1, n)
            new, old = states[1:].reshape(-1, n), states[:-1].reshape(-1, n)
            for block in [slice(o, o + s) for o, s in zip(offsets(sizes), sizes)]:
                torch.mm(flat_g[:, block].T, new[:, :block.start], out=grad_c[block, :block.start])
                torch.mm(flat_g[:, block].T, old[:, block.start:], out=grad_c[block, block.start:])
            grads[4] = grad_c.mul_(dt)
        POOL.give(grad_u)
        return (*grads, None, None, None)


def block_major(buffer: Tensor, block: slice, steps: int, batch: int) -> Tensor:
    """Block ``block``'s contiguous (steps, B, n_i) part of a flat block-major buffer of steps * B * n."""
    start, stop = steps * batch * block.start, steps * batch * block.stop
    return buffer[start:stop].view(steps, batch, block.stop - block.start)


def offsets(sizes: Sequence[int]) -> list[int]:
    return [sum(sizes[:i]) for i in range(len(sizes))]


def check_shapes(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, rows: int) -> None:
    n = h0.shape[-1]
    if h0.dim() != 2 or x.dim() != 3 or x.shape[1] != h0.shape[0]:
        raise ValueError(f"expected h0 (B, n) and time-major x (T, B, m) with the same B, got h0 "
                         f"{tuple(h0.shape)} and x {tuple(x.shape)}")
    expected = {"weight": (rows, x.shape[-1]), "bias": (rows,), "matrix": (n, n)}
    for name, tensor in (("weight", weight), ("bias", bias), ("matrix", matrix)):
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(f"{name} must be {expected[name]} for n={n} state units and m={x.shape[-1]} "
                             f"inputs, got {tuple(tensor.shape)}")


def tanh_rk_scan(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                 tableau: ButcherTableau, substeps: int = 1, gated: bool = False) -> tuple[Tensor, Tensor]:
    """(states (T, B, n), h_T) of the fused scan of f(h, u) = tanh(A h + u) (or, ``gated``, eq. 13's
    sigmoid(A h + u_z) * tanh(A h + u_h)); ``x`` is time-major (T, B, m), the projection u = V x + b with V
    (n, m) and b (n,), or (2n, m) and (2n,) when gated (first half the gate); steps of size ``dt`` of the
    explicit ``tableau``, ``substeps`` per sample."""
    check_explicit(tableau)
    check_shapes(h0, x, weight, bias, matrix, h0.shape[-1] * (2 if gated else 1))
    return TanhRKScan.apply(h0, x.contiguous(), weight, bias, matrix, float(dt), tableau, int(substeps),
                            bool(gated))


def tanh_gauss_seidel_scan(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                           sizes: Sequence[int], substeps: int = 1) -> tuple[Tensor, Tensor]:
    """(states (T, B, n), h_T) of partitioned (Gauss-Seidel) Euler over blocks of ``sizes`` (summing to n) of
    f(h, u) = tanh(h C^T + u): block i moves by dt * tanh(z_i C[block i]^T + u[:, block i]), z_i the state
    with blocks before i already new (``solvers.partitioned_euler_step``). ``x`` time-major (T, B, m),
    V (n, m), b (n,), C (n, n); ``substeps`` steps of size ``dt`` per sample."""
    n = h0.shape[-1]
    try:
        sizes = tuple(int(s) for s in sizes)
    except TypeError:
        raise ValueError(f"sizes must be a sequence of positive block sizes, got {sizes!r}") from None
    if not sizes or any(s <= 0 for s in sizes) or sum(sizes) != n:
        raise ValueError(f"sizes must be positive block sizes summing to the state size {n}, got {sizes}")
    check_shapes(h0, x, weight, bias, matrix, n)
    return TanhGaussSeidelScan.apply(h0, x.contiguous(), weight, bias, matrix, float(dt), sizes, int(substeps))
