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
#include <mutex>
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
//             accumulated from k_i while it is in registers (each started from y by its first non-zero term).
//             Only the states and the records are kept: a step's stage inputs live in a small scratch buffer,
//             and the backward forms them again from y and the records (k_i is the tanh record, or the
//             product of the gated record's gate and update);
//   backward  t_i = gs_i A (one GEMM), then ONE pass: gy += dt t_i, acc_p += dt a_ip t_i (p < i), and the
//             next stage's gs_{i-1} = acc_{i-1} act'_{i-1} (acc_p = gk_p / dt = b_p gy' + sum_l a_lp gY_l / dt);
//             the pass of stage 0 also begins the previous step (its gy', gs_{s-1} and the acc_p = b_p gy').
//             Once a step's gs_i are final (before the product of its stage 0), its share of the weight
//             gradient, sum_i gs_i^T Y_i, is one product with K = s rows per batch row, accumulated per band,
//             and its input sample's gradient the sum of its stages: the gs_i never leave the cache.
// gs holds dL/ds / dt, gu (gated) dL/du / dt, as the Python walks do.

template <typename T>
struct Target {  // out = base + coef * value; base == out accumulates, base == y starts from y
  T* out;
  const T* base;
  T coef;
};

// The tableau as the walks use it: a (s x s, row-major in the op's argument), b, and for each sum the stage
// whose term starts it from y (its first non-zero coefficient; 0 where there is none: Y_p = y + 0 k_0).
struct Tableau {
  std::vector<std::vector<double>> a;
  std::vector<double> b;
  std::vector<int64_t> starts;  // of Y_p, p >= 1
  int64_t next_starts = 0;      // of y'

  Tableau(at::ArrayRef<double> flat, at::ArrayRef<double> weights) : b(weights.begin(), weights.end()) {
    const int64_t s = stages();
    for (int64_t i = 0; i < s; ++i) a.emplace_back(flat.begin() + i * s, flat.begin() + (i + 1) * s);
    starts.assign(s, 0);
    for (int64_t p = 1; p < s; ++p) starts[p] = first_nonzero(a[p], p);
    next_starts = first_nonzero(b, s);
  }
  int64_t stages() const { return static_cast<int64_t>(b.size()); }

  // The sums that take k_i, as targets: Y_p (p > i) in inputs[p - 1], and y' in ``next`` unless it is null.
  template <typename T>
  std::vector<Target<T>> targets(int64_t i, const std::vector<T*>& inputs, const T* y, T* next, double dt) const {
    std::vector<Target<T>> out;
    for (int64_t p = i + 1; p < stages(); ++p)
      if (i == starts[p] || a[p][i] != 0.0) out.push_back({inputs[p - 1], i == starts[p] ? y : inputs[p - 1], T(dt * a[p][i])});
    if (next != nullptr && (i == next_starts || b[i] != 0.0)) out.push_back({next, i == next_starts ? y : next, T(dt * b[i])});
    return out;
  }

 private:
  static int64_t first_nonzero(const std::vector<double>& row, int64_t count) {
    for (int64_t l = 0; l < count; ++l)
      if (row[l] != 0.0) return l;
    return 0;
  }
};

// Layout of one activation: tanh records k (B, n); gated records [gate, update] per row (B, 2n).
template <typename T>
struct Layout {
  int64_t batch, n;
  bool gated;
  int64_t width() const { return gated ? 2 * n : n; }
  V<T> output(const T* rec, int64_t ro, int64_t cnt) const {  // k from the record
    const V<T> first = V<T>::loadu(rec + ro, cnt);
    return gated ? first * V<T>::loadu(rec + ro + n, cnt) : first;
  }
};

// k_i = act(pre + u) for the whole (B, n) block, its record written, targets updated from k_i.
template <typename T>
void forward_pass(const Layout<T>& L, const T* pre, const Inputs<T>& u, T* rec, const std::vector<Target<T>>& targets) {
  const int64_t n = L.n, w = L.width(), step = V<T>::size();
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
        gate.store(rec + ro, cnt);
        update.store(rec + ro + n, cnt);
        k = gate * update;
      }
      for (const auto& t : targets) (V<T>::loadu(t.base + o, cnt) + V<T>(t.coef) * k).store(t.out + o, cnt);
    }
  }
}

// A step's stage inputs again (the backward's): ys[0] = y, and each Y_p from the records of the stages before
// it by the forward's targets (targets[l]: those of stage l), in the forward's order.
template <typename T>
void stage_inputs_pass(const Layout<T>& L, const T* y, const std::vector<const T*>& recs,
                       const std::vector<std::vector<Target<T>>>& targets, T* ys) {
  const int64_t n = L.n, w = L.width(), step = V<T>::size();
  for (int64_t r = 0; r < L.batch; ++r) {
    for (int64_t c = 0; c < n; c += step) {
      const int64_t cnt = std::min<int64_t>(step, n - c), o = r * n + c, ro = r * w + c;
      V<T>::loadu(y + o, cnt).store(ys + o, cnt);
      for (size_t l = 0; l < targets.size(); ++l) {
        const V<T> k = L.output(recs[l], ro, cnt);
        for (const auto& t : targets[l]) (V<T>::loadu(t.base + o, cnt) + V<T>(t.coef) * k).store(t.out + o, cnt);
      }
    }
  }
}

// dL/ds / dt (and, gated, dL/du / dt) of a stage from acc = gk / dt for one chunk.
template <typename T>
inline void activation_backward(const Layout<T>& L, const V<T>& acc, const T* rec, T* gs, T* gu, int64_t o,
                                int64_t ro, int64_t cnt) {
  const V<T> one(T(1));
  if (!L.gated) {
    const V<T> k = V<T>::loadu(rec + ro, cnt);
    (acc * (one - k * k)).store(gs + o, cnt);
  } else {
    const V<T> gate = V<T>::loadu(rec + ro, cnt), update = V<T>::loadu(rec + ro + L.n, cnt);
    const V<T> dz = acc * (update * gate * (one - gate)), dh = acc * (gate * (one - update * update));
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

// One step's share of its input sample's gradient g = dL/du / dt (the held u_k is seen by every stage and
// substep of sample k): total = (first step of the sample walked ? 0 : partial) + the stages' rows (row stride
// w n). ``inline_inputs`` null: total goes into ``partial`` (a row of the (T, B, w n) gradient). Otherwise, for
// inputs formed in the walk as u = [x, 1] [V^T; b]: while the sample has substeps left, total is kept in
// ``partial`` (a scratch row); at its last one walked, it goes straight into dL/dx_k / dt = g V (``grad_x``,
// (B, m)) and into dL/d[V^T; b] / dt += [x_k, 1]^T g, summed over the band's rows into ``step_weight``
// ((m + 1, w n), zeroed here) and then added to ``grad_weight`` (two levels, for a rounding error like a
// blocked product's). g itself is never written to memory.
template <typename T>
struct SampleGradient {
  const Inputs<T>* inline_inputs = nullptr;  // the augmented [x_k, 1] rows and [V^T; b] (m + 1, w n)
  T* grad_x = nullptr;
  T* step_weight = nullptr;
  T* grad_weight = nullptr;
};

template <typename T>
void sample_pass(const Layout<T>& L, const std::vector<const T*>& stages, T* partial, bool first, bool last,
                 const SampleGradient<T>& out) {
  const int64_t w = L.width(), step = V<T>::size();
  const Inputs<T>* x = out.inline_inputs;
  const bool reduce = x != nullptr && last;
  const int64_t m = reduce ? x->features - 1 : 0;  // the features of x (the last column of [x, 1] is the bias')
  if (reduce) std::fill(out.step_weight, out.step_weight + (m + 1) * w, T(0));
  std::vector<V<T>> dot(m);
  for (int64_t r = 0; r < L.batch; ++r) {
    std::fill(dot.begin(), dot.end(), V<T>(T(0)));
    const T* features = reduce ? x->rows + r * x->stride : nullptr;
    for (int64_t c = 0; c < w; c += step) {
      const int64_t cnt = std::min<int64_t>(step, w - c), o = r * w + c;
      V<T> total = first ? V<T>(T(0)) : V<T>::loadu(partial + o, cnt);
      for (const T* g : stages) total = total + V<T>::loadu(g + o, cnt);
      if (!reduce) {
        total.store(partial + o, cnt);
        continue;
      }
      for (int64_t f = 0; f <= m; ++f) {
        T* row = out.step_weight + f * w + c;
        at::vec::fmadd(V<T>(features[f]), total, V<T>::loadu(row, cnt)).store(row, cnt);
        if (f < m) dot[f] = at::vec::fmadd(total, V<T>::loadu(x->weight + f * w + c, cnt), dot[f]);
      }
    }
    for (int64_t f = 0; f < m; ++f) {
      T lanes[V<T>::size()];
      dot[f].store(lanes);
      T sum = 0;
      for (T lane : lanes) sum += lane;
      out.grad_x[r * m + f] = sum;
    }
  }
  if (reduce)
    for (int64_t e = 0; e < (m + 1) * w; e += step) {
      const int64_t cnt = std::min<int64_t>(step, (m + 1) * w - e);
      (V<T>::loadu(out.grad_weight + e, cnt) + V<T>::loadu(out.step_weight + e, cnt)).store(out.grad_weight + e, cnt);
    }
}

template <typename T>
T* at_(const Tensor& t, int64_t i0, int64_t i1) {  // start of t[i0][i1]
  return t.data_ptr<T>() + (i0 * t.size(1) + i1) * t.stride(1);
}

template <typename T>
T* row_(const Tensor& t, int64_t i) {  // start of t[i]
  return t.data_ptr<T>() + i * t.stride(0);
}

// states (steps + 1, B, n) with states[0] = h0; inputs (T, B, w n) projected, or (T, B, m + 1) augmented with
// input_weight (m + 1, w n) given; records (s, steps, B, w n).
template <typename T>
void rk_forward_typed(const Tensor& states, const Tensor& inputs, const std::optional<Tensor>& input_weight,
                      const Tensor& matrix, const Tensor& records, const Tableau& tableau, double dt,
                      int64_t substeps, bool gated) {
  const int64_t steps = states.size(0) - 1, batch = states.size(1), n = states.size(2);
  const int64_t stages = tableau.stages();
  const Layout<T> L{batch, n, gated};
  const FixedProduct product(matrix.t(), batch);  // s_i = Y_i A^T
  // s_i goes to a scratch block that stays in cache: the product writes no cold memory, the pass the record
  const Tensor pre = at::empty({batch, n}, states.options());
  const Tensor stage_inputs = at::empty({stages - 1, batch, n}, states.options());  // Y_2..Y_s of the step
  // views per stage once, so that a step forms only those its products need (a select costs ~0.3 us)
  std::vector<Tensor> in_of;
  std::vector<T*> inputs_at;
  for (int64_t p = 0; p + 1 < stages; ++p) {
    in_of.push_back(stage_inputs.select(0, p));
    inputs_at.push_back(row_<T>(stage_inputs, p));
  }
  for (int64_t j = 0; j < steps; ++j) {
    const Tensor y = states.select(0, j);
    T* y_ptr = y.data_ptr<T>();
    const Inputs<T> u = held<T>(inputs, input_weight, j / substeps);
    for (int64_t i = 0; i < stages; ++i) {
      product(pre, i == 0 ? y : in_of[i - 1]);
      forward_pass<T>(L, pre.data_ptr<T>(), u, at_<T>(records, i, j),
                      tableau.targets<T>(i, inputs_at, y_ptr, y_ptr + states.stride(0), dt));
    }
  }
}

void rk_forward(const Tensor& states, const Tensor& inputs, const std::optional<Tensor>& input_weight,
                const Tensor& matrix, const Tensor& records, at::ArrayRef<double> a, at::ArrayRef<double> b,
                double dt, int64_t substeps, bool gated) {
  TORCH_CHECK(inputs.stride(2) == 1, "rk_forward: inputs must have unit stride in their last dimension");
  TORCH_CHECK(!input_weight || (input_weight->is_contiguous() && input_weight->size(0) == inputs.size(2) &&
                                input_weight->size(1) == records.size(3)),
              "rk_forward: input_weight must be a contiguous (m + 1, w n) matrix for (T, B, m + 1) inputs");
  const Tableau tableau(a, b);
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "rk_forward", [&] {
    over_bands(states.size(1), [&](int64_t r0, int64_t count) {
      rk_forward_typed<scalar_t>(states.narrow(1, r0, count), inputs.narrow(1, r0, count), input_weight, matrix,
                                 records.narrow(2, r0, count), tableau, dt, substeps, gated);
    });
  });
}

// The reverse walk on one band of rows: grad_h holds dL/dh_steps on entry and is a work buffer; returns dL/dh0.
// grad_states (T, B, n) is the gradient of the returned states, if any. With the forward's projected inputs
// (input_weight undefined) grad_inputs (T, B, w n) receives dL/du / dt of every input sample (its stages and
// substeps summed); with its augmented ones (inputs (T, B, m + 1) and input_weight [V^T; b] (m + 1, w n))
// grad_inputs (T, B, m) receives dL/dx / dt and grad_input_weight (m + 1, w n) the band's dL/d[V^T; b] / dt
// (sample_pass). grad_matrix, if defined (n, n), receives the band's dL/dA / dt = sum over its steps and
// stages of gs_i^T Y_i.
template <typename T>
Tensor rk_backward_typed(Tensor grad_h, const std::optional<Tensor>& grad_states, const Tensor& states,
                         const Tensor& records, const Tensor& matrix, const Tensor& inputs,
                         const std::optional<Tensor>& input_weight, const Tensor& grad_inputs,
                         const Tensor& grad_input_weight, const Tensor& grad_matrix, const Tableau& tableau, double dt,
                         int64_t substeps, bool gated) {
  const int64_t stages = records.size(0), steps = records.size(1), batch = grad_h.size(0), n = grad_h.size(1);
  const Layout<T> L{batch, n, gated};
  const auto options = grad_h.options();
  const FixedProduct product(matrix, batch);  // t_i = gs_i A
  Tensor grad_next = at::empty_like(grad_h), t = at::empty_like(grad_h);
  Tensor acc = at::empty({std::max<int64_t>(stages - 1, 1), batch, n}, options);
  // a step's gs_i (and gu_i), and its stage inputs for the weight gradient; with projected inputs, one stage
  // and one step per sample the stage's input gradient is its sample's, written straight into grad_inputs
  const bool in_walk = input_weight.has_value(), direct = !in_walk && stages == 1 && substeps == 1;
  Tensor partial = in_walk ? at::empty({batch, L.width()}, options) : Tensor();  // g of a sample with substeps left
  Tensor step_weight = in_walk ? at::empty_like(grad_input_weight) : Tensor();
  Tensor gs = at::empty({stages, batch, n}, options);
  Tensor gu = gated ? at::empty({stages, batch, 2 * n}, options) : Tensor();
  Tensor ys = grad_matrix.defined() && stages > 1 ? at::empty({stages, batch, n}, options) : Tensor();
  std::vector<Tensor> gs_of;
  for (int64_t i = 0; i < stages; ++i) gs_of.push_back(gs.select(0, i));
  const bool gs_direct = direct && !gated;  // tanh: gs_0 is the sample's dL/du, written where it belongs
  auto gs_at = [&](int64_t i, int64_t j) -> T* { return gs_direct ? row_<T>(grad_inputs, j) : row_<T>(gs, i); };
  auto gs_tensor = [&](int64_t i, int64_t j) { return gs_direct ? grad_inputs.select(0, j) : gs_of[i]; };
  auto gu_at = [&](int64_t i, int64_t j) -> T* {
    return !gated ? nullptr : direct ? row_<T>(grad_inputs, j) : row_<T>(gu, i);
  };
  std::vector<T*> acc_of, ys_at;
  for (int64_t p = 0; p < acc.size(0); ++p) acc_of.push_back(row_<T>(acc, p));
  if (ys.defined())
    for (int64_t p = 1; p < stages; ++p) ys_at.push_back(row_<T>(ys, p));
  auto begin_step = [&](int64_t j) {  // step j's gs_{s-1} and acc_p = b_p gy'
    Begin<T> begin;
    begin.active = true;
    begin.rec = at_<T>(records, stages - 1, j);
    begin.gs = gs_at(stages - 1, j);
    begin.gu = gu_at(stages - 1, j);
    begin.b_last = T(tableau.b[stages - 1]);
    for (int64_t p = 0; p + 1 < stages; ++p) begin.accs.emplace_back(acc_of[p], T(tableau.b[p]));
    return begin;
  };
  auto extra_for = [&](int64_t j) -> const T* {  // the gradient of a returned state entering before step j
    if (!grad_states || (j + 1) % substeps != 0) return nullptr;
    return row_<T>(*grad_states, (j + 1) / substeps - 1);
  };
  auto finish_step = [&](int64_t j) {  // every gs_i of step j is final: its weight and input gradients
    if (grad_matrix.defined()) {
      if (stages == 1) {
        grad_matrix.addmm_(gs_tensor(0, j).t(), states.select(0, j));
      } else {
        const T* y = row_<T>(states, j);
        std::vector<const T*> recs;
        std::vector<std::vector<Target<T>>> targets;
        for (int64_t l = 0; l + 1 < stages; ++l) {
          recs.push_back(at_<T>(records, l, j));
          targets.push_back(tableau.targets<T>(l, ys_at, y, nullptr, dt));
        }
        stage_inputs_pass<T>(L, y, recs, targets, ys.data_ptr<T>());
        grad_matrix.addmm_(gs.view({stages * batch, n}).t(), ys.view({stages * batch, n}));
      }
    }
    if (!direct) {
      const int64_t k = j / substeps;
      std::vector<const T*> rows;
      for (int64_t i = 0; i < stages; ++i) rows.push_back(gated ? gu_at(i, j) : gs_at(i, j));
      SampleGradient<T> out;
      Inputs<T> x;
      if (in_walk) {
        x = held<T>(inputs, input_weight, k);
        out = {&x, row_<T>(grad_inputs, k), step_weight.data_ptr<T>(), grad_input_weight.data_ptr<T>()};
      }
      sample_pass<T>(L, rows, in_walk ? partial.data_ptr<T>() : row_<T>(grad_inputs, k), (j + 1) % substeps == 0,
                     j % substeps == 0, out);
    }
  };
  // the first step walked: gy' = grad_h (+ G), begun in place
  backward_pass<T>(L, nullptr, T(dt), grad_h.data_ptr<T>(), grad_h.data_ptr<T>(), extra_for(steps - 1), {}, {},
                   begin_step(steps - 1));
  for (int64_t j = steps - 1; j >= 0; --j) {
    for (int64_t i = stages - 1; i >= 0; --i) {
      if (i == 0) finish_step(j);
      product(t, gs_tensor(i, j));
      std::vector<Target<T>> accs;
      for (int64_t p = 0; p < i; ++p)
        if (tableau.a[i][p] != 0.0) accs.push_back({acc_of[p], acc_of[p], T(dt * tableau.a[i][p])});
      Finish<T> finish;
      Begin<T> begin;
      const T* extra = nullptr;
      if (i > 0) {
        finish.active = true;
        finish.acc = acc_of[i - 1];
        finish.rec = at_<T>(records, i - 1, j);
        finish.gs = gs_at(i - 1, j);
        finish.gu = gu_at(i - 1, j);
      } else if (j > 0) {
        begin = begin_step(j - 1);
        extra = extra_for(j - 1);
      }
      // gy accumulates into grad_next from grad_h (first stage of the step) or from itself
      const T* gy_in = i == stages - 1 ? grad_h.data_ptr<T>() : grad_next.data_ptr<T>();
      backward_pass<T>(L, t.data_ptr<T>(), T(dt), gy_in, grad_next.data_ptr<T>(), extra, accs, finish, begin);
    }
    std::swap(grad_h, grad_next);
  }
  return grad_h;
}

Tensor rk_backward(Tensor grad_h, const std::optional<Tensor>& grad_states, const Tensor& states,
                   const Tensor& records, const Tensor& matrix, const std::optional<Tensor>& inputs,
                   const std::optional<Tensor>& input_weight, const Tensor& grad_inputs,
                   const std::optional<Tensor>& grad_input_weight, const std::optional<Tensor>& grad_matrix,
                   at::ArrayRef<double> a, at::ArrayRef<double> b, double dt, int64_t substeps, bool gated) {
  TORCH_CHECK(!grad_states || grad_states->is_contiguous(), "rk_backward: grad_states must be contiguous");
  TORCH_CHECK(grad_h.is_contiguous(), "rk_backward: grad_h must be contiguous");
  TORCH_CHECK(grad_inputs.is_contiguous(), "rk_backward: grad_inputs must be contiguous");
  TORCH_CHECK(!grad_matrix || (grad_matrix->is_contiguous() && grad_matrix->sizes() == matrix.sizes()),
              "rk_backward: grad_matrix must be a contiguous matrix of A's shape");
  TORCH_CHECK(!input_weight || (inputs && inputs->stride(2) == 1 && grad_input_weight &&
                                grad_input_weight->is_contiguous() &&
                                grad_input_weight->sizes() == input_weight->sizes() &&
                                grad_inputs.size(2) == input_weight->size(0) - 1),
              "rk_backward: with input_weight, the augmented inputs, a contiguous grad_input_weight of its shape and "
              "(T, B, m) grad_inputs are needed");
  const Tableau tableau(a, b);
  const int64_t batch = grad_h.size(0);
  Tensor out = at::empty_like(grad_h);
  std::mutex lock;
  std::vector<std::pair<int64_t, std::pair<Tensor, Tensor>>> parts;  // (first row, the band's two sums)
  AT_DISPATCH_FLOATING_TYPES(grad_h.scalar_type(), "rk_backward", [&] {
    over_bands(batch, [&](int64_t r0, int64_t count) {
      std::optional<Tensor> band_states;
      if (grad_states) band_states = grad_states->narrow(1, r0, count);
      Tensor part_matrix = grad_matrix ? at::zeros_like(matrix) : Tensor();
      Tensor part_weight = input_weight ? at::zeros_like(*input_weight) : Tensor();
      out.narrow(0, r0, count).copy_(rk_backward_typed<scalar_t>(
          grad_h.narrow(0, r0, count), band_states, states.narrow(1, r0, count), records.narrow(2, r0, count),
          matrix, input_weight ? inputs->narrow(1, r0, count) : Tensor(), input_weight,
          grad_inputs.narrow(1, r0, count), part_weight, part_matrix, tableau, dt, substeps, gated));
      const std::lock_guard<std::mutex> guard(lock);
      parts.emplace_back(r0, std::make_pair(part_matrix, part_weight));
    });
  });
  // the bands' shares summed in the order of their rows, whatever order they finished in
  std::sort(parts.begin(), parts.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  auto sum_parts = [&](const std::optional<Tensor>& total, auto part_of) {
    total->zero_();
    for (const auto& part : parts) total->add_(part_of(part.second));
  };
  if (grad_matrix) sum_parts(grad_matrix, [](const auto& both) { return both.first; });
  if (input_weight) sum_parts(grad_input_weight, [](const auto& both) { return both.second; });
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
  std::vector<FixedProduct> products;  // z_i C_i^T
  for (const auto& t : transposed) products.emplace_back(t, states.size(1));
  for (int64_t j = 0; j < steps; ++j) {
    const Tensor y = states.select(0, j), next = states.select(0, j + 1);
    if (blocks > 1) tail.select(0, j + 1).copy_(tail.select(0, j));
    for (int64_t i = 0; i < blocks; ++i) {
      Tensor k = ks[i].select(0, j);
      k.copy_(us[i].select(0, j / substeps));
      products[i](k, i == 0 ? y : next, /*accumulate=*/true);
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
  std::vector<FixedProduct> products;  // dt gs_i C_i
  for (int64_t i = 0; i < blocks; ++i) {
    grads.push_back(grad_h.narrow(1, starts[i], sizes[i]));
    products.emplace_back(rows[i], grad_h.size(0), dt);
  }
  for (int64_t j = steps - 1; j >= 0; --j) {
    if (grad_states && (j + 1) % substeps == 0) grad_h.add_(grad_states->select(0, (j + 1) / substeps - 1));
    for (int64_t i = blocks - 1; i >= 0; --i) {
      Tensor g = gus[i].select(0, j);
      at::tanh_backward_out(g, grads[i], ks[i].select(0, j));
      products[i](grad_h, g, /*accumulate=*/true);
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
// cut them and each product formed as theirs (FixedProduct), so that the floor and the scans arrange their
// products alike.
void gemm_chain(const Tensor& out, const Tensor& state, const Tensor& weight) {
  over_bands(state.size(0), [&](int64_t r0, int64_t count) {
    const Tensor band = state.narrow(0, r0, count), rows = out.narrow(1, r0, count);
    const FixedProduct product(weight, count);
    for (int64_t t = 0; t < out.size(0); ++t) product(rows.select(0, t), band);
  });
}

}  // namespace

TORCH_LIBRARY(odernn_fused, m) {
  m.def("rk_forward(Tensor(a!) states, Tensor inputs, Tensor? input_weight, Tensor matrix, Tensor(b!) records, "
        "float[] a, float[] b, float dt, int substeps, bool gated) -> ()");
  m.def("rk_backward(Tensor(d!) grad_h, Tensor? grad_states, Tensor states, Tensor records, Tensor matrix, "
        "Tensor? inputs, Tensor? input_weight, Tensor(a!) grad_inputs, Tensor(c!)? grad_input_weight, "
        "Tensor(b!)? grad_matrix, float[] a, float[] b, float dt, int substeps, bool gated) -> Tensor");
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
