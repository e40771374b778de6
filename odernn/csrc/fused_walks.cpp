// The time loops of odernn's fused scans (odernn/fused.py), compiled: the same walks as the Python ones
// there, step for step and operation for operation, with the loop in C++ so that each of the T steps costs
// the arithmetic of its matrix product and elementwise passes and no interpreter round trips. The buffers
// are allocated by the caller (odernn/fused.py keeps them in a pool); every walk writes into them in place.
// Registered as torch.ops.odernn_fused.<walk>; built on first use by odernn/kernels.py.
//
// Explicit Runge-Kutta with s stages on k = act(Y A^T + u) (tanh, or the gated sigmoid * tanh of the
// AntisymmetricRNN paper's eq. 13), and partitioned (Gauss-Seidel) Euler over blocks of the state; the
// equations are in odernn/fused.py's docstring.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "walk_support.h"

namespace {

using at::Tensor;
using namespace odernn_walks;

// ---------------------------------------------------------------------------------------------------------
// Explicit Runge-Kutta. Per step j and stage i (s stages, tableau a, b):
//   forward   s_i = Y_i A^T (one GEMM), then ONE elementwise pass: k_i = act(s_i + u), its record, and every
//             later stage input Y_p = y + dt sum_l a_pl k_l and the next state y' = y + dt sum_l b_l k_l
//             accumulated from k_i while it is in registers (each started from y by its first non-zero term);
//   backward  t_i = gs_i A (one GEMM), then ONE pass: gy += dt t_i, acc_p += dt a_ip t_i (p < i), and the
//             next stage's gs_{i-1} = acc_{i-1} act'_{i-1} (acc_p = gk_p / dt = b_p gy' + sum_l a_lp gY_l / dt);
//             the pass of stage 0 also begins the previous step (its gy', gs_{s-1} and the acc_p = b_p gy').
// grad_s holds dL/ds / dt, grad_u (gated) dL/du / dt, as the Python walks do.

template <typename T>
struct Target {  // out = base + coef * value; base == out accumulates, base == y starts from y
  T* out;
  const T* base;
  T coef;
};

// Layout of one activation: tanh records k (B, n); gated records [dk/du_z, dk/du_h] per row (B, 2n).
template <typename T>
struct Layout {
  int64_t batch, n;
  bool gated;
  int64_t width() const { return gated ? 2 * n : n; }
};

// k_i = act(pre + u) for the whole (B, n) block, records written, targets updated from k_i.
template <typename T>
void forward_pass(const Layout<T>& L, const T* pre, const Inputs<T>& u, T* rec, T* k_out,
                  const std::vector<Target<T>>& targets) {
  const int64_t n = L.n, w = L.width(), step = V<T>::size();
  const V<T> one(T(1));
  for (int64_t r = 0; r < L.batch; ++r) {
    for (int64_t c = 0; c < n; c += step) {
      const int64_t cnt = std::min<int64_t>(step, n - c), o = r * n + c, ro = r * w + c;
      V<T> k;
      if (!L.gated) {
        k = tanh_<T>(V<T>::loadu(pre + o, cnt) + u.load(r, c, cnt));
        k.store(rec + ro, cnt);
      } else {
        const V<T> p = V<T>::loadu(pre + o, cnt);
        const V<T> gate = sigmoid<T>(p + u.load(r, c, cnt));
        const V<T> update = tanh_<T>(p + u.load(r, c + n, cnt));
        k = gate * update;
        k.store(k_out + o, cnt);
        (update * gate * (one - gate)).store(rec + ro, cnt);
        (gate * (one - update * update)).store(rec + ro + n, cnt);
      }
      for (const auto& t : targets) (V<T>::loadu(t.base + o, cnt) + V<T>(t.coef) * k).store(t.out + o, cnt);
    }
  }
}

// dL/ds / dt (and, gated, dL/du / dt) of a stage from acc = gk / dt for one chunk.
template <typename T>
inline void activation_backward(const Layout<T>& L, const V<T>& acc, const T* rec, T* gs, T* gu, int64_t o,
                                int64_t ro, int64_t cnt) {
  if (!L.gated) {
    const V<T> k = V<T>::loadu(rec + ro, cnt);
    (acc * (V<T>(T(1)) - k * k)).store(gs + o, cnt);
  } else {
    const V<T> dz = acc * V<T>::loadu(rec + ro, cnt), dh = acc * V<T>::loadu(rec + ro + L.n, cnt);
    dz.store(gu + ro, cnt);
    dh.store(gu + ro + L.n, cnt);
    (dz + dh).store(gs + o, cnt);
  }
}

// What a backward pass does after its gy update: begin a step (gs_{s-1} and acc_p = b_p gy') or finish
// stage i-1 (gs_{i-1} from its acc).
template <typename T>
struct Begin {
  bool active = false;
  const T* rec = nullptr;  // records of stage s-1 of the step begun
  T* gs = nullptr;
  T* gu = nullptr;
  T b_last = 0;
  std::vector<std::pair<T*, T>> accs;  // acc_p = b_p gy'
};

template <typename T>
struct Finish {
  bool active = false;
  const T* acc = nullptr;  // acc_{i-1} (also among the pass's acc targets, updated first)
  const T* rec = nullptr;
  T* gs = nullptr;
  T* gu = nullptr;
};

// gy_out = gy_in + dt t (+ G); acc targets += coef t; then Finish or Begin (with the new gy). t == nullptr:
// the first pass of the walk, gy_out = gy_in + G only.
template <typename T>
void backward_pass(const Layout<T>& L, const T* t, T dt, const T* gy_in, T* gy_out, const T* extra,
                   const std::vector<Target<T>>& accs, const Finish<T>& finish, const Begin<T>& begin) {
  const int64_t n = L.n, w = L.width(), step = V<T>::size();
  for (int64_t r = 0; r < L.batch; ++r) {
    for (int64_t c = 0; c < n; c += step) {
      const int64_t cnt = std::min<int64_t>(step, n - c), o = r * n + c, ro = r * w + c;
      V<T> gy = V<T>::loadu(gy_in + o, cnt);
      if (t != nullptr) {
        const V<T> tv = V<T>::loadu(t + o, cnt);
        gy = gy + V<T>(dt) * tv;
        for (const auto& a : accs) (V<T>::loadu(a.base + o, cnt) + V<T>(a.coef) * tv).store(a.out + o, cnt);
      }
      if (extra != nullptr) gy = gy + V<T>::loadu(extra + o, cnt);
      gy.store(gy_out + o, cnt);
      if (finish.active) activation_backward(L, V<T>::loadu(finish.acc + o, cnt), finish.rec, finish.gs, finish.gu,
                                             o, ro, cnt);
      if (begin.active) {
        activation_backward(L, V<T>(begin.b_last) * gy, begin.rec, begin.gs, begin.gu, o, ro, cnt);
        for (const auto& [acc, b] : begin.accs) (V<T>(b) * gy).store(acc + o, cnt);
      }
    }
  }
}

// dL/du / dt of one input sample, the sum over the s stages of one step (row stride w n each), written into
// (first step of the sample walked) or added to (its other substeps) ``out``.
template <typename T>
void sample_sum(const std::vector<const T*>& stages, T* out, bool first, int64_t count) {
  const int64_t step = V<T>::size();
  for (int64_t o = 0; o < count; o += step) {
    const int64_t cnt = std::min<int64_t>(step, count - o);
    V<T> total = first ? V<T>(T(0)) : V<T>::loadu(out + o, cnt);
    for (const T* g : stages) total = total + V<T>::loadu(g + o, cnt);
    total.store(out + o, cnt);
  }
}

std::vector<std::vector<double>> square(at::ArrayRef<double> a, int64_t stages) {
  std::vector<std::vector<double>> rows(stages);
  for (int64_t i = 0; i < stages; ++i) rows[i].assign(a.begin() + i * stages, a.begin() + (i + 1) * stages);
  return rows;
}

template <typename T>
T* at_(const Tensor& t, int64_t i0, int64_t i1) {  // start of t[i0][i1]
  return t.data_ptr<T>() + (i0 * t.size(1) + i1) * t.stride(1);
}

// states (steps + 1, B, n) with states[0] = h0; inputs (T, B, w n) projected, or (T, B, m + 1) augmented with
// input_weight (m + 1, w n) given; stage_inputs (s - 1, steps, B, n);
// records (s, steps, B, w n); a the s x s tableau row-major, b its weights.
template <typename T>
void rk_forward_typed(const Tensor& states, const Tensor& inputs, const std::optional<Tensor>& input_weight,
                      const Tensor& matrix, const Tensor& stage_inputs,
                      const Tensor& records, const std::vector<std::vector<double>>& a, at::ArrayRef<double> b,
                      double dt, int64_t substeps, bool gated) {
  const int64_t steps = states.size(0) - 1, batch = states.size(1), n = states.size(2);
  const int64_t stages = static_cast<int64_t>(b.size());
  const Layout<T> L{batch, n, gated};
  const Tensor matrix_t = matrix.t();
  Tensor pre = gated ? at::empty({batch, n}, states.options()) : Tensor();
  Tensor ks = gated ? at::empty({stages, batch, n}, states.options()) : Tensor();
  // per stage once, so that a step forms only the views its products need (a select costs ~0.3 us)
  std::vector<Tensor> rec_of, in_of;
  for (int64_t i = 0; i < stages; ++i) rec_of.push_back(records.select(0, i));
  for (int64_t p = 0; p + 1 < stages; ++p) in_of.push_back(stage_inputs.select(0, p));
  // the stage that starts each stage input Y_p (and y') from y: the first with a non-zero coefficient (0 where
  // there is none: Y_p = y), so that no stage input is first written as a copy of y
  auto first_nonzero = [](const std::vector<double>& row, int64_t count) {
    for (int64_t l = 0; l < count; ++l)
      if (row[l] != 0.0) return l;
    return int64_t(0);
  };
  std::vector<int64_t> starts_at(stages, 0);
  for (int64_t p = 1; p < stages; ++p) starts_at[p] = first_nonzero(a[p], p);
  const int64_t next_starts_at = first_nonzero(std::vector<double>(b.begin(), b.end()), stages);
  for (int64_t j = 0; j < steps; ++j) {
    Tensor y = states.select(0, j);
    T* y_ptr = y.data_ptr<T>();
    T* next = y_ptr + states.stride(0);
    Inputs<T> u = held<T>(inputs, input_weight, j / substeps);
    for (int64_t i = 0; i < stages; ++i) {
      Tensor input = i == 0 ? y : in_of[i - 1].select(0, j);
      Tensor rec = rec_of[i].select(0, j);
      Tensor s_i = gated ? pre : rec;
      at::mm_out(s_i, input, matrix_t);
      std::vector<Target<T>> targets;
      for (int64_t p = i + 1; p < stages; ++p) {
        T* out = at_<T>(stage_inputs, p - 1, j);
        if (i == starts_at[p] || a[p][i] != 0.0) targets.push_back({out, i == starts_at[p] ? y_ptr : out, T(dt * a[p][i])});
      }
      if (i == next_starts_at || b[i] != 0.0) targets.push_back({next, i == next_starts_at ? y_ptr : next, T(dt * b[i])});
      forward_pass<T>(L, s_i.data_ptr<T>(), u, rec.data_ptr<T>(), gated ? ks.data_ptr<T>() + i * ks.stride(0) : nullptr,
                      targets);
    }
  }
}

void rk_forward(const Tensor& states, const Tensor& inputs, const std::optional<Tensor>& input_weight,
                const Tensor& matrix, const Tensor& stage_inputs,
                const Tensor& records, at::ArrayRef<double> a, at::ArrayRef<double> b, double dt,
                int64_t substeps, bool gated) {
  TORCH_CHECK(inputs.stride(2) == 1, "rk_forward: inputs must have unit stride in their last dimension");
  TORCH_CHECK(!input_weight || (input_weight->is_contiguous() && input_weight->size(0) == inputs.size(2) &&
                                input_weight->size(1) == records.size(3)),
              "rk_forward: input_weight must be a contiguous (m + 1, w n) matrix for (T, B, m + 1) inputs");
  const auto rows = square(a, static_cast<int64_t>(b.size()));
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "rk_forward", [&] {
    over_bands(states.size(1), [&](int64_t r0, int64_t count) {
      rk_forward_typed<scalar_t>(states.narrow(1, r0, count), inputs.narrow(1, r0, count), input_weight, matrix,
                                 stage_inputs.narrow(2, r0, count), records.narrow(2, r0, count), rows, b, dt,
                                 substeps, gated);
    });
  });
}

// The reverse walk: grad_h holds dL/dh_steps on entry and is a work buffer; returns dL/dh0. grad_s
// (s, steps, B, n) receives dL/ds / dt of every stage and step, grad_u (gated only) dL/du / dt (s, steps, B, 2n).
// grad_states (T, B, n) is the gradient of the returned states, if any. grad_inputs (T, B, w n), if given,
// receives dL/du / dt of every input sample (its stages and substeps summed), formed as each step finishes
// while its stages' values are still in cache.
template <typename T>
Tensor rk_backward_typed(Tensor grad_h, const std::optional<Tensor>& grad_states, const Tensor& records,
                         const Tensor& matrix, const Tensor& grad_s, const std::optional<Tensor>& grad_u,
                         const std::optional<Tensor>& grad_inputs,
                         const std::vector<std::vector<double>>& a, at::ArrayRef<double> b, double dt,
                         int64_t substeps, bool gated) {
  const int64_t stages = records.size(0), steps = records.size(1), batch = grad_h.size(0), n = grad_h.size(1);
  const Layout<T> L{batch, n, gated};
  Tensor grad_next = at::empty_like(grad_h);
  Tensor acc = at::empty({std::max<int64_t>(stages - 1, 1), batch, n}, grad_h.options());
  Tensor t = at::empty_like(grad_h);
  auto gu_at = [&](int64_t i, int64_t j) -> T* { return gated ? at_<T>(*grad_u, i, j) : nullptr; };
  std::vector<Tensor> gs_of;  // per stage once (a step then forms one view per product)
  for (int64_t i = 0; i < stages; ++i) gs_of.push_back(grad_s.select(0, i));
  std::vector<T*> acc_of;
  for (int64_t p = 0; p < acc.size(0); ++p) acc_of.push_back(acc.data_ptr<T>() + p * acc.stride(0));
  auto begin_step = [&](int64_t j) {  // step j's gs_{s-1} and acc_p = b_p gy'
    Begin<T> begin;
    begin.active = true;
    begin.rec = at_<T>(records, stages - 1, j);
    begin.gs = at_<T>(grad_s, stages - 1, j);
    begin.gu = gu_at(stages - 1, j);
    begin.b_last = T(b[stages - 1]);
    for (int64_t p = 0; p + 1 < stages; ++p) begin.accs.emplace_back(acc_of[p], T(b[p]));
    return begin;
  };
  auto extra_for = [&](int64_t j) -> const T* {  // the gradient of a returned state entering before step j
    if (!grad_states || (j + 1) % substeps != 0) return nullptr;
    return grad_states->data_ptr<T>() + ((j + 1) / substeps - 1) * grad_states->stride(0);
  };
  // the first step walked: gy' = grad_h (+ G), begun in place
  backward_pass<T>(L, nullptr, T(dt), grad_h.data_ptr<T>(), grad_h.data_ptr<T>(), extra_for(steps - 1), {}, {},
                   begin_step(steps - 1));
  for (int64_t j = steps - 1; j >= 0; --j) {
    for (int64_t i = stages - 1; i >= 0; --i) {
      at::mm_out(t, gs_of[i].select(0, j), matrix);
      std::vector<Target<T>> accs;
      for (int64_t p = 0; p < i; ++p)
        if (a[i][p] != 0.0) {
          accs.push_back({acc_of[p], acc_of[p], T(dt * a[i][p])});
        }
      Finish<T> finish;
      Begin<T> begin;
      const T* extra = nullptr;
      if (i > 0) {
        finish.active = true;
        finish.acc = acc_of[i - 1];
        finish.rec = at_<T>(records, i - 1, j);
        finish.gs = at_<T>(grad_s, i - 1, j);
        finish.gu = gu_at(i - 1, j);
      } else if (j > 0) {
        begin = begin_step(j - 1);
        extra = extra_for(j - 1);
      }
      // gy accumulates into grad_next from grad_h (first stage of the step) or from itself
      const T* gy_in = i == stages - 1 ? grad_h.data_ptr<T>() : grad_next.data_ptr<T>();
      backward_pass<T>(L, t.data_ptr<T>(), T(dt), gy_in, grad_next.data_ptr<T>(), extra, accs, finish, begin);
    }
    if (grad_inputs) {  // every stage of step j is final now (stage 0's since the pass of stage 1, or s = 1's
                        // since the previous step's last pass)
      std::vector<const T*> rows;
      for (int64_t i = 0; i < stages; ++i) rows.push_back(gated ? gu_at(i, j) : at_<T>(grad_s, i, j));
      sample_sum<T>(rows, grad_inputs->data_ptr<T>() + (j / substeps) * grad_inputs->stride(0), (j + 1) % substeps == 0,
                    batch * L.width());
    }
    std::swap(grad_h, grad_next);
  }
  return grad_h;
}

Tensor rk_backward(Tensor grad_h, const std::optional<Tensor>& grad_states, const Tensor& records,
                   const Tensor& matrix, const Tensor& grad_s, const std::optional<Tensor>& grad_u,
                   const std::optional<Tensor>& grad_inputs, at::ArrayRef<double> a, at::ArrayRef<double> b,
                   double dt, int64_t substeps, bool gated) {
  TORCH_CHECK(!grad_states || grad_states->is_contiguous(), "rk_backward: grad_states must be contiguous");
  TORCH_CHECK(grad_h.is_contiguous(), "rk_backward: grad_h must be contiguous");
  TORCH_CHECK(!grad_inputs || grad_inputs->is_contiguous(), "rk_backward: grad_inputs must be contiguous");
  const auto rows = square(a, records.size(0));
  Tensor out = at::empty_like(grad_h);
  AT_DISPATCH_FLOATING_TYPES(grad_h.scalar_type(), "rk_backward", [&] {
    over_bands(grad_h.size(0), [&](int64_t r0, int64_t count) {
      std::optional<Tensor> band_states, band_u, band_inputs;
      if (grad_states) band_states = grad_states->narrow(1, r0, count);
      if (grad_u) band_u = grad_u->narrow(2, r0, count);
      if (grad_inputs) band_inputs = grad_inputs->narrow(1, r0, count);
      out.narrow(0, r0, count).copy_(rk_backward_typed<scalar_t>(
          grad_h.narrow(0, r0, count), band_states, records.narrow(2, r0, count), matrix,
          grad_s.narrow(2, r0, count), band_u, band_inputs, rows, b, dt, substeps, gated));
    });
  });
  return out;
}

std::vector<int64_t> offsets(at::IntArrayRef sizes) {
  std::vector<int64_t> out(sizes.size(), 0);
  for (size_t i = 1; i < sizes.size(); ++i) out[i] = out[i - 1] + sizes[i - 1];
  return out;
}

// Block i's contiguous (steps, B, n_i) part of a flat block-major buffer of steps * B * n.
Tensor block_major(const Tensor& flat, int64_t start, int64_t size, int64_t steps, int64_t batch) {
  return flat.narrow(0, steps * batch * start, steps * batch * size).view({steps, batch, size});
}

// Partitioned Euler on one band of rows: states (steps + 1, rows, n) with states[0] = h0, us/ks the blocks'
// projected inputs (T, rows, n_i) and tanh outputs (steps, rows, n_i).
void gs_forward_band(const Tensor& states, const std::vector<Tensor>& us, const std::vector<Tensor>& ks,
                     const std::vector<Tensor>& transposed, at::IntArrayRef sizes, double dt, int64_t substeps) {
  const int64_t steps = states.size(0) - 1, n = states.size(2);
  const auto starts = offsets(sizes);
  const int64_t blocks = static_cast<int64_t>(sizes.size());
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < blocks; ++i) parts.push_back(states.narrow(2, starts[i], sizes[i]));
  const Tensor tail = states.narrow(2, sizes[0], n - sizes[0]);
  for (int64_t j = 0; j < steps; ++j) {
    const Tensor y = states.select(0, j), next = states.select(0, j + 1);
    if (blocks > 1) tail.select(0, j + 1).copy_(tail.select(0, j));
    for (int64_t i = 0; i < blocks; ++i) {
      Tensor k = ks[i].select(0, j);
      at::addmm_out(k, us[i].select(0, j / substeps), i == 0 ? y : next, transposed[i]);
      k.tanh_();
      Tensor part_next = parts[i].select(0, j + 1);
      if (i == 0) at::add_out(part_next, parts[i].select(0, j), k, dt);
      else part_next.add_(k, dt);
    }
  }
}

std::vector<Tensor> bands_of(const std::vector<Tensor>& full, int64_t dim, int64_t r0, int64_t count) {
  std::vector<Tensor> out;
  for (const auto& t : full) out.push_back(t.narrow(dim, r0, count));
  return out;
}

// Partitioned Euler: states (steps + 1, B, n) with states[0] = h0, projected (T, B, n), acts the block-major
// tanh outputs (steps * B * n).
void gs_forward(const Tensor& states, const Tensor& projected, const Tensor& matrix, const Tensor& acts,
                at::IntArrayRef sizes, double dt, int64_t substeps) {
  const int64_t steps = states.size(0) - 1, batch = states.size(1);
  const auto starts = offsets(sizes);
  std::vector<Tensor> transposed, ks, us;
  for (size_t i = 0; i < sizes.size(); ++i) {
    transposed.push_back(matrix.narrow(0, starts[i], sizes[i]).t());
    ks.push_back(block_major(acts, starts[i], sizes[i], steps, batch));
    us.push_back(projected.narrow(2, starts[i], sizes[i]));
  }
  over_bands(batch, [&](int64_t r0, int64_t count) {
    gs_forward_band(states.narrow(1, r0, count), bands_of(us, 1, r0, count), bands_of(ks, 1, r0, count),
                    transposed, sizes, dt, substeps);
  });
}

// Its reverse walk on one band of rows: grad_h (rows, n) in place (dL/dh_steps in, dL/dh0 out); gus the
// blocks of grad_u (steps, rows, n_i), which receive dL/du / dt = dL/ds / dt of every step.
void gs_backward_band(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const std::vector<Tensor>& ks,
                      const std::vector<Tensor>& gus, const std::vector<Tensor>& rows, at::IntArrayRef sizes,
                      double dt, int64_t substeps) {
  const int64_t steps = gus[0].size(0);
  const auto starts = offsets(sizes);
  const int64_t blocks = static_cast<int64_t>(sizes.size());
  std::vector<Tensor> grads;
  for (int64_t i = 0; i < blocks; ++i) grads.push_back(grad_h.narrow(1, starts[i], sizes[i]));
  for (int64_t j = steps - 1; j >= 0; --j) {
    if (grad_states && (j + 1) % substeps == 0) grad_h.add_(grad_states->select(0, (j + 1) / substeps - 1));
    for (int64_t i = blocks - 1; i >= 0; --i) {
      Tensor g = gus[i].select(0, j);
      at::tanh_backward_out(g, grads[i], ks[i].select(0, j));
      grad_h.addmm_(g, rows[i], 1.0, dt);
    }
  }
}

// The reverse walk: grad_h (B, n) in place; grad_u (steps, B, n).
void gs_backward(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const Tensor& acts,
                 const Tensor& grad_u, const Tensor& matrix, at::IntArrayRef sizes, double dt, int64_t substeps) {
  TORCH_CHECK(grad_h.is_contiguous(), "gs_backward: grad_h must be contiguous");
  const int64_t steps = grad_u.size(0), batch = grad_u.size(1);
  const auto starts = offsets(sizes);
  std::vector<Tensor> rows, ks, gus;
  for (size_t i = 0; i < sizes.size(); ++i) {
    rows.push_back(matrix.narrow(0, starts[i], sizes[i]));
    ks.push_back(block_major(acts, starts[i], sizes[i], steps, batch));
    gus.push_back(grad_u.narrow(2, starts[i], sizes[i]));
  }
  over_bands(batch, [&](int64_t r0, int64_t count) {
    std::optional<Tensor> band_states;
    if (grad_states) band_states = grad_states->narrow(1, r0, count);
    gs_backward_band(grad_h.narrow(0, r0, count), band_states, bands_of(ks, 1, r0, count),
                     bands_of(gus, 1, r0, count), rows, sizes, dt, substeps);
  });
}

// The benchmark's banded GEMM floor: out[t] = state weight for every t, the rows cut into bands as the walks
// cut them (so the floor and the scans arrange their products alike).
void gemm_chain(const Tensor& out, const Tensor& state, const Tensor& weight) {
  over_bands(state.size(0), [&](int64_t r0, int64_t count) {
    const Tensor band = state.narrow(0, r0, count), rows = out.narrow(1, r0, count);
    for (int64_t t = 0; t < out.size(0); ++t) {
      Tensor target = rows.select(0, t);
      at::mm_out(target, band, weight);
    }
  });
}

}  // namespace

TORCH_LIBRARY(odernn_fused, m) {
  m.def("rk_forward(Tensor(a!) states, Tensor inputs, Tensor? input_weight, Tensor matrix, Tensor(b!) stage_inputs, "
        "Tensor(c!) records, float[] a, float[] b, float dt, int substeps, bool gated) -> ()");
  m.def("rk_backward(Tensor(d!) grad_h, Tensor? grad_states, Tensor records, Tensor matrix, Tensor(a!) grad_s, "
        "Tensor(b!)? grad_u, Tensor(e!)? grad_inputs, float[] a, float[] b, float dt, int substeps, bool gated) -> Tensor");
  m.def("gs_forward(Tensor(a!) states, Tensor projected, Tensor matrix, Tensor(b!) acts, int[] sizes, float dt, "
        "int substeps) -> ()");
  m.def("gs_backward(Tensor(a!) grad_h, Tensor? grad_states, Tensor acts, Tensor(b!) grad_u, Tensor matrix, "
        "int[] sizes, float dt, int substeps) -> ()");
  m.def("gemm_chain(Tensor(a!) out, Tensor state, Tensor weight) -> ()");
}

TORCH_LIBRARY_IMPL(odernn_fused, CPU, m) {
  m.impl("rk_forward", &rk_forward);
  m.impl("rk_backward", &rk_backward);
  m.impl("gs_forward", &gs_forward);
  m.impl("gs_backward", &gs_backward);
  m.impl("gemm_chain", &gemm_chain);
}
