// The time loops of the ODE-RNN family's fused scans, compiled: coRNN's symplectic Euler
// (odernn/fused_oscillator.py), LEM's partitioned Euler (odernn/fused_lem.py), UnICORNN's symplectic Euler layer
// (odernn/fused_unicornn.py) and the Lipschitz RNN's forward Euler (odernn/fused_lipschitz.py). Each computes what the Python walk of its module computes, with the loop
// in C++: per step the module's matrix products go straight to ATen and everything elementwise between two
// products is one vectorised pass, the backward's pass also beginning the previous step (the gradient of a
// returned state added, the next product's left factor formed); for few input features the passes form the
// held input u = [x, 1] [V^T; b] themselves (no projection written). The buffers are the caller's; the weights'
// gradients stay large products after the walk, in Python. Registered beside fused_walks.cpp's walks as
// torch.ops.odernn_fused.<walk>.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <optional>

#include "walk_support.h"

namespace {

using at::Tensor;
using namespace odernn_walks;

// A (rows, columns) view's element (r, c) at p[r * stride + c]: the walks read their band's rows of
// row-major buffers through such views. Empty: no tensor.
template <typename T>
struct Rows {
  T* p = nullptr;
  int64_t stride = 0;
  V<T> load(int64_t r, int64_t c, int64_t cnt) const { return V<T>::loadu(p + r * stride + c, cnt); }
  void store(const V<T>& v, int64_t r, int64_t c, int64_t cnt) const { v.store(p + r * stride + c, cnt); }
};

// A (steps, rows, columns) buffer, from which each step's Rows are formed by pointer arithmetic (no
// tensor per step), starting ``offset`` columns in.
template <typename T>
struct Steps {
  T* p = nullptr;
  int64_t step = 0, stride = 0;
  Steps() = default;
  Steps(const Tensor& t, int64_t offset = 0) : p(t.data_ptr<T>() + offset), step(t.stride(0)), stride(t.stride(1)) {}
  Rows<T> operator[](int64_t j) const { return {p + j * step, stride}; }
};

// Calls body(r, c, cnt) over the (rows, n) chunks of one vector each.
template <typename T, typename F>
inline void chunks(int64_t rows, int64_t n, const F& body) {
  const int64_t step = V<T>::size();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; c += step) body(r, c, std::min<int64_t>(step, n - c));
}

// The gradients of the returned states (T, rows, S), one per input sample: the one that enters before step
// j's adjoint, read after the last of its sample's substeps, else empty rows.
template <typename T>
struct Returned {
  Steps<T> grads;
  int64_t substeps = 1;
  Returned(const std::optional<Tensor>& grad_states, int64_t substeps) : substeps(substeps) {
    if (grad_states) grads = Steps<T>(*grad_states);
  }
  Rows<T> before(int64_t j) const {
    if (j < 0 || grads.p == nullptr || (j + 1) % substeps != 0) return {};
    return grads[(j + 1) / substeps - 1];
  }
};

template <typename T>
inline V<T> one_minus_square(const V<T>& a) { return V<T>(T(1)) - a * a; }

// gz, gy (columns c and n + c of a state's gradient) plus the returned state's gradient, where there is one.
template <typename T>
inline void add_returned(const Rows<T>& extra, int64_t n, int64_t r, int64_t c, int64_t cnt, V<T>& gz, V<T>& gy) {
  if (extra.p == nullptr) return;
  gz = gz + extra.load(r, c, cnt);
  gy = gy + extra.load(r, n + c, cnt);
}

// ---------------------------------------------------------------------------------------------------------
// coRNN, h = [z, y] (odernn/fused_oscillator.py): a = tanh([z, y] C^T + u),
// z' = keep z + drive dt (a - gamma y), y' = y + dt z' (the damping explicit: keep = 1 - dt eps, drive = 1;
// implicit: keep = drive = 1 / (1 + dt eps)). Adjoint: q = gz' + dt gy', g = tanh'(a) drive q,
// [gz, gy] = dt g C + [keep q, gy' - drive dt gamma q].

template <typename T>
void oscillator_forward_band(const Tensor& states, const Tensor& inputs, const std::optional<Tensor>& input_weight,
                             const Tensor& coupling_t, const Tensor& acts, double gamma, double keep_z, double drive,
                             double dt, int64_t substeps) {
  const int64_t steps = acts.size(0), rows = acts.size(1), n = acts.size(2);
  const FixedProduct by_coupling_t(coupling_t, rows);
  const V<T> keep = V<T>(T(keep_z)), h = V<T>(T(dt)), push = V<T>(T(drive * dt)), pull = V<T>(T(-drive * dt * gamma));
  const Steps<T> a_s(acts), h_s(states);
  for (int64_t j = 0; j < steps; ++j) {
    Tensor a_j = acts.select(0, j);
    by_coupling_t(a_j, states.select(0, j));
    const Rows<T> a = a_s[j], now = h_s[j], next = h_s[j + 1];
    const Inputs<T> u = held<T>(inputs, input_weight, j / substeps);
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> act = tanh_<T>(a.load(r, c, cnt) + u.load(r, c, cnt));
      a.store(act, r, c, cnt);
      const V<T> y = now.load(r, n + c, cnt);
      const V<T> z_new = keep * now.load(r, c, cnt) + push * act + pull * y;
      next.store(z_new, r, c, cnt);
      next.store(y + h * z_new, r, n + c, cnt);
    });
  }
}

// grad_h (rows, 2n): dL/dh_steps in, dL/dh0 out; grad_u (steps, rows, n) receives g of every step.
template <typename T>
void oscillator_backward_band(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const Tensor& acts,
                              const Tensor& coupling, const Tensor& grad_u, double gamma, double keep_z, double drive,
                              double dt, int64_t substeps) {
  const int64_t steps = acts.size(0), rows = acts.size(1), n = acts.size(2);
  const FixedProduct by_coupling(coupling, rows);
  const V<T> keep = V<T>(T(keep_z)), h = V<T>(T(dt)), weigh = V<T>(T(drive)), pull = V<T>(T(-drive * dt * gamma));
  Tensor q_t = at::empty({rows, n}, grad_h.options()), t_t = at::empty({rows, 2 * n}, grad_h.options());
  const Rows<T> gh{grad_h.data_ptr<T>(), grad_h.stride(0)}, q{q_t.data_ptr<T>(), n}, t{t_t.data_ptr<T>(), 2 * n};
  const Steps<T> a_s(acts), g_s(grad_u);
  const Returned<T> returned(grad_states, substeps);
  // begins step j: gh = dL/d(z', y') (its returned state's gradient added), q and g = tanh'(a) drive q
  auto begin = [&](int64_t r, int64_t c, int64_t cnt, V<T> gz, V<T> gy, const Rows<T>& extra, const Rows<T>& a,
                   const Rows<T>& g) {
    add_returned(extra, n, r, c, cnt, gz, gy);
    gh.store(gz, r, c, cnt);
    gh.store(gy, r, n + c, cnt);
    const V<T> qv = gz + h * gy;
    q.store(qv, r, c, cnt);
    g.store(one_minus_square(a.load(r, c, cnt)) * (weigh * qv), r, c, cnt);
  };
  {
    const Rows<T> extra = returned.before(steps - 1), a = a_s[steps - 1], g = g_s[steps - 1];
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      begin(r, c, cnt, gh.load(r, c, cnt), gh.load(r, n + c, cnt), extra, a, g);
    });
  }
  for (int64_t j = steps - 1; j >= 0; --j) {
    by_coupling(t_t, grad_u.select(0, j));
    const int64_t before = std::max<int64_t>(j - 1, 0);  // the step begun (j > 0 only)
    const Rows<T> extra = returned.before(j - 1), a = a_s[before], g = g_s[before];
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> qv = q.load(r, c, cnt);
      const V<T> gz = h * t.load(r, c, cnt) + keep * qv;
      const V<T> gy = h * t.load(r, n + c, cnt) + gh.load(r, n + c, cnt) + pull * qv;
      if (j > 0) {
        begin(r, c, cnt, gz, gy, extra, a, g);
      } else {
        gh.store(gz, r, c, cnt);
        gh.store(gy, r, n + c, cnt);
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// LEM, h = [z, y] (odernn/fused_lem.py): [r1, r2, a] = [sigmoid, sigmoid, tanh](y W_h^T + dp),
// z' = z + dt r2 (a - z), b = tanh(z' W_z^T + dq), y' = y + dt r1 (b - y), where the drives [dp | dq] (4n wide)
// hold the input's part and the biases. Adjoint: gQ = tanh'(b) dt r1 gy', gP1 = sigmoid'(r1) dt (b - y) gy',
// q = gz' + gQ W_z, gP3 = tanh'(a) dt r2 q, gP2 = sigmoid'(r2) dt (a - z) q, gz = (1 - dt r2) q,
// gy = (1 - dt r1) gy' + gP W_h.

template <typename T>
void lem_forward_band(const Tensor& states, const Tensor& drives, const std::optional<Tensor>& drive_weight,
                      const Tensor& w_h_t, const Tensor& w_z_t, const Tensor& rates, const Tensor& targets, double dt,
                      int64_t substeps) {
  const int64_t steps = targets.size(0), rows = targets.size(1), n = targets.size(2);
  const FixedProduct by_w_h_t(w_h_t, rows);
  const FixedProduct by_w_z_t(w_z_t, rows);
  const V<T> h = V<T>(T(dt));
  const Steps<T> p_s(rates), b_s(targets), h_s(states);
  for (int64_t j = 0; j < steps; ++j) {
    Tensor p_j = rates.select(0, j), b_j = targets.select(0, j);
    const Tensor now_t = states.select(0, j), next_t = states.select(0, j + 1);
    by_w_h_t(p_j, now_t.narrow(1, n, n));
    const Rows<T> p = p_s[j], b = b_s[j], now = h_s[j], next = h_s[j + 1];
    const Inputs<T> u = held<T>(drives, drive_weight, j / substeps);
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> r2 = sigmoid<T>(p.load(r, n + c, cnt) + u.load(r, n + c, cnt));
      const V<T> a = tanh_<T>(p.load(r, 2 * n + c, cnt) + u.load(r, 2 * n + c, cnt));
      p.store(sigmoid<T>(p.load(r, c, cnt) + u.load(r, c, cnt)), r, c, cnt);
      p.store(r2, r, n + c, cnt);
      p.store(a, r, 2 * n + c, cnt);
      const V<T> z = now.load(r, c, cnt);
      next.store(z + h * r2 * (a - z), r, c, cnt);
    });
    by_w_z_t(b_j, next_t.narrow(1, 0, n));
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> target = tanh_<T>(b.load(r, c, cnt) + u.load(r, 3 * n + c, cnt));
      b.store(target, r, c, cnt);
      const V<T> y = now.load(r, n + c, cnt);
      next.store(y + h * p.load(r, c, cnt) * (target - y), r, n + c, cnt);
    });
  }
}

// grad_h (rows, 2n) in place; grad_drives (steps, rows, 4n) receives [dL/d(P1, P2, P3) | dL/dQ] of every step.
template <typename T>
void lem_backward_band(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const Tensor& states,
                       const Tensor& rates, const Tensor& targets, const Tensor& w_h, const Tensor& w_z,
                       const Tensor& grad_drives, double dt, int64_t substeps) {
  const int64_t steps = targets.size(0), rows = targets.size(1), n = targets.size(2);
  const FixedProduct by_w_z(w_z, rows);
  const FixedProduct by_w_h(w_h, rows);
  const V<T> h = V<T>(T(dt)), one = V<T>(T(1));
  Tensor t_t = at::empty({rows, n}, grad_h.options());
  const Rows<T> gh{grad_h.data_ptr<T>(), grad_h.stride(0)}, t{t_t.data_ptr<T>(), n};
  const Steps<T> p_s(rates), b_s(targets), h_s(states), gp_s(grad_drives), gq_s(grad_drives, 3 * n);
  const Returned<T> returned(grad_states, substeps);
  // begins step j from gh = dL/d(z', y') (its returned state's gradient added): gQ and gP1
  auto begin = [&](int64_t j, int64_t r, int64_t c, int64_t cnt, V<T> gz, V<T> gy, const Rows<T>& extra) {
    add_returned(extra, n, r, c, cnt, gz, gy);
    gh.store(gz, r, c, cnt);
    gh.store(gy, r, n + c, cnt);
    const V<T> r1 = p_s[j].load(r, c, cnt), b = b_s[j].load(r, c, cnt), hg = h * gy;
    gq_s[j].store(one_minus_square(b) * (hg * r1), r, c, cnt);
    gp_s[j].store(r1 * (one - r1) * (hg * (b - h_s[j].load(r, n + c, cnt))), r, c, cnt);
  };
  {
    const Rows<T> extra = returned.before(steps - 1);
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      begin(steps - 1, r, c, cnt, gh.load(r, c, cnt), gh.load(r, n + c, cnt), extra);
    });
  }
  for (int64_t j = steps - 1; j >= 0; --j) {
    const Tensor grad_j = grad_drives.select(0, j);
    by_w_z(t_t, grad_j.narrow(1, 3 * n, n));
    const Rows<T> p = p_s[j], now = h_s[j], gp = gp_s[j];
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> q = gh.load(r, c, cnt) + t.load(r, c, cnt), hq = h * q;
      const V<T> r1 = p.load(r, c, cnt), r2 = p.load(r, n + c, cnt), a = p.load(r, 2 * n + c, cnt);
      gp.store(one_minus_square(a) * (hq * r2), r, 2 * n + c, cnt);
      gp.store(r2 * (one - r2) * (hq * (a - now.load(r, c, cnt))), r, n + c, cnt);
      gh.store(q - hq * r2, r, c, cnt);
      const V<T> gy = gh.load(r, n + c, cnt);
      gh.store(gy - h * gy * r1, r, n + c, cnt);
    });
    by_w_h(t_t, grad_j.narrow(1, 0, 3 * n));
    const Rows<T> extra = returned.before(j - 1);
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> gy = gh.load(r, n + c, cnt) + t.load(r, c, cnt);
      if (j > 0) begin(j - 1, r, c, cnt, gh.load(r, c, cnt), gy, extra);
      else gh.store(gy, r, n + c, cnt);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Lipschitz RNN (odernn/fused_lipschitz.py): [p, s] = h [L | W], h' = h + eps (p + tanh(s + u)). Adjoint:
// G = [eps g', tanh'(a) eps g'], gh = g' + G [L | W]^T.

template <typename T>
void linear_tanh_forward_band(const Tensor& states, const Tensor& inputs, const std::optional<Tensor>& input_weight,
                              const Tensor& both, const Tensor& acts, double eps, int64_t substeps) {
  const int64_t steps = acts.size(0), rows = acts.size(1), n = acts.size(2);
  const FixedProduct by_both(both, rows);
  const V<T> e = V<T>(T(eps));
  Tensor work_t = at::empty({rows, 2 * n}, states.options());
  const Rows<T> work{work_t.data_ptr<T>(), 2 * n};
  const Steps<T> a_s(acts), h_s(states);
  for (int64_t j = 0; j < steps; ++j) {
    by_both(work_t, states.select(0, j));
    const Rows<T> a = a_s[j], now = h_s[j], next = h_s[j + 1];
    const Inputs<T> u = held<T>(inputs, input_weight, j / substeps);
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> act = tanh_<T>(work.load(r, n + c, cnt) + u.load(r, c, cnt));
      a.store(act, r, c, cnt);
      next.store(now.load(r, c, cnt) + e * (work.load(r, c, cnt) + act), r, c, cnt);
    });
  }
}

// grad_h (rows, n) in place; grad_ps (steps, rows, 2n) receives G of every step.
template <typename T>
void linear_tanh_backward_band(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const Tensor& acts,
                               const Tensor& both_t, const Tensor& grad_ps, double eps, int64_t substeps) {
  const int64_t steps = acts.size(0), rows = acts.size(1), n = acts.size(2);
  const FixedProduct by_both_t(both_t, rows);
  const V<T> e = V<T>(T(eps));
  Tensor t_t = at::empty({rows, n}, grad_h.options());
  const Rows<T> gh{grad_h.data_ptr<T>(), grad_h.stride(0)}, t{t_t.data_ptr<T>(), n};
  const Steps<T> a_s(acts), out_s(grad_ps);
  const Returned<T> returned(grad_states, substeps);
  // begins step j from g' = dL/dh' (its returned state's gradient added): G
  auto begin = [&](int64_t r, int64_t c, int64_t cnt, V<T> g, const Rows<T>& extra, const Rows<T>& a,
                   const Rows<T>& out) {
    if (extra.p != nullptr) g = g + extra.load(r, c, cnt);
    gh.store(g, r, c, cnt);
    const V<T> eg = e * g;
    out.store(eg, r, c, cnt);
    out.store(one_minus_square(a.load(r, c, cnt)) * eg, r, n + c, cnt);
  };
  {
    const Rows<T> extra = returned.before(steps - 1), a = a_s[steps - 1], out = out_s[steps - 1];
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) { begin(r, c, cnt, gh.load(r, c, cnt), extra, a, out); });
  }
  for (int64_t j = steps - 1; j >= 0; --j) {
    by_both_t(t_t, grad_ps.select(0, j));
    const int64_t before = std::max<int64_t>(j - 1, 0);  // the step begun (j > 0 only)
    const Rows<T> extra = returned.before(j - 1), a = a_s[before], out = out_s[before];
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> g = gh.load(r, c, cnt) + t.load(r, c, cnt);
      if (j > 0) begin(r, c, cnt, g, extra, a, out);
      else gh.store(g, r, c, cnt);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// UnICORNN, one layer (odernn/fused_unicornn.py): a = tanh(w y + u), z' = z - delta (a + alpha y),
// y' = y + delta z', per neuron (w, delta (n,)): one elementwise pass per step, no product (the drives u are one
// large product per layer, outside). Adjoint, with
// q = gz' + delta gy': g = -delta tanh'(a) q, gz = q, gy = gy' - delta alpha q + w g; g is written per step (the
// drive's gradient), and dL/dw = sum g y, dL/ddelta = sum (gy' z' - q (a + alpha y)) are summed per row.

// zs, ys (steps + 1, rows, n) with step 0 set (views of one layer's columns of the stacked state, row stride S);
// drive (samples, rows, n), sample j / hold for step j.
template <typename T>
void independent_forward_band(const Tensor& zs, const Tensor& ys, const Tensor& acts, const Tensor& drive,
                              const Tensor& w, const Tensor& delta, double alpha, int64_t hold) {
  const int64_t steps = acts.size(0), rows = acts.size(1), n = acts.size(2);
  const V<T> al = V<T>(T(alpha));
  const Steps<T> z_s(zs), y_s(ys), a_s(acts), u_s(drive);
  const T* wp = w.data_ptr<T>();
  const T* dp = delta.data_ptr<T>();
  for (int64_t j = 0; j < steps; ++j) {
    const Rows<T> u = u_s[j / hold], a_j = a_s[j], z = z_s[j], y = y_s[j], z_next = z_s[j + 1], y_next = y_s[j + 1];
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> dv = V<T>::loadu(dp + c, cnt), yv = y.load(r, c, cnt);
      const V<T> a = tanh_<T>(u.load(r, c, cnt) + V<T>::loadu(wp + c, cnt) * yv);
      const V<T> zn = z.load(r, c, cnt) - dv * (a + al * yv);
      a_j.store(a, r, c, cnt);
      z_next.store(zn, r, c, cnt);
      y_next.store(yv + dv * zn, r, c, cnt);
    });
  }
}

// gz, gy (rows, n): dL/d(z, y)_steps in, dL/d(z, y)_0 out. grad_states (T, rows, S), if any, holds the returned
// states' gradients, this layer's z at column ``start`` and y at start + n; from_above (steps, rows, n), if any,
// the gradient of y_{j+1} through the layer above's drive at its step j. g (steps, rows, n) receives g; sums
// (2, rows, n) the per-row sums for dL/dw and dL/ddelta.
template <typename T>
void independent_backward_band(const Tensor& gz_t, const Tensor& gy_t, const std::optional<Tensor>& grad_states,
                               int64_t start, const std::optional<Tensor>& from_above, const Tensor& zs,
                               const Tensor& ys, const Tensor& acts, const Tensor& w, const Tensor& delta,
                               double alpha, int64_t substeps, const Tensor& g_t, const Tensor& sums) {
  const int64_t steps = acts.size(0), rows = acts.size(1), n = acts.size(2);
  const V<T> al = V<T>(T(alpha)), one = V<T>(T(1));
  const Steps<T> z_s(zs), y_s(ys), a_s(acts), g_s(g_t);
  const Steps<T> above = from_above ? Steps<T>(*from_above) : Steps<T>();
  const Returned<T> returned(grad_states, substeps);
  const Rows<T> gz{gz_t.data_ptr<T>(), gz_t.stride(0)}, gy_rows{gy_t.data_ptr<T>(), gy_t.stride(0)};
  const Rows<T> sum_w{sums.data_ptr<T>(), sums.stride(1)}, sum_d{sums.data_ptr<T>() + sums.stride(0), sums.stride(1)};
  const T* wp = w.data_ptr<T>();
  const T* dp = delta.data_ptr<T>();
  chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
    sum_w.store(V<T>(T(0)), r, c, cnt);
    sum_d.store(V<T>(T(0)), r, c, cnt);
  });
  for (int64_t j = steps - 1; j >= 0; --j) {
    const Rows<T> extra = returned.before(j), a_j = a_s[j], y = y_s[j], z_next = z_s[j + 1], g_j = g_s[j];
    const Rows<T> from = above.p != nullptr ? above[j] : Rows<T>{};
    chunks<T>(rows, n, [&](int64_t r, int64_t c, int64_t cnt) {
      const V<T> dv = V<T>::loadu(dp + c, cnt);
      V<T> z_grad = gz.load(r, c, cnt), y_grad = gy_rows.load(r, c, cnt);
      if (extra.p != nullptr) {
        z_grad = z_grad + extra.load(r, start + c, cnt);
        y_grad = y_grad + extra.load(r, start + n + c, cnt);
      }
      if (from.p != nullptr) y_grad = y_grad + from.load(r, c, cnt);
      const V<T> a = a_j.load(r, c, cnt), yv = y.load(r, c, cnt);
      const V<T> q = z_grad + dv * y_grad;
      const V<T> g = V<T>(T(0)) - dv * (one - a * a) * q;
      g_j.store(g, r, c, cnt);
      sum_w.store(sum_w.load(r, c, cnt) + g * yv, r, c, cnt);
      sum_d.store(sum_d.load(r, c, cnt) + y_grad * z_next.load(r, c, cnt) - q * (a + al * yv), r, c, cnt);
      gz.store(q, r, c, cnt);
      gy_rows.store(y_grad - dv * al * q + V<T>::loadu(wp + c, cnt) * g, r, c, cnt);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The ops: checks, dtype dispatch, bands of rows (the batch is dimension 1 of the walks' (steps, B, .) buffers
// and dimension 0 of grad_h).

std::optional<Tensor> band_of(const std::optional<Tensor>& t, int64_t r0, int64_t count) {
  if (!t) return std::nullopt;
  return t->narrow(1, r0, count);
}

void check_rows(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const char* walk) {
  TORCH_CHECK(grad_h.is_contiguous(), walk, ": grad_h must be contiguous");
  TORCH_CHECK(!grad_states || grad_states->is_contiguous(), walk, ": grad_states must be contiguous");
}

// The held inputs: projected (T, B, width) with no input_weight, or augmented [x, 1] (T, B, m + 1) with the
// (m + 1, width) input_weight [V^T; b], from which the passes form u (walk_support.h's Inputs).
void check_inputs(const Tensor& inputs, const std::optional<Tensor>& input_weight, int64_t width, const char* walk) {
  TORCH_CHECK(inputs.stride(2) == 1, walk, ": inputs must have unit stride in their last dimension");
  TORCH_CHECK(input_weight ? input_weight->is_contiguous() && input_weight->size(0) == inputs.size(2) &&
                                 input_weight->size(1) == width
                           : inputs.size(2) == width,
              walk, ": inputs must be the (T, B, width) projection, or (T, B, m + 1) with a contiguous (m + 1, width) "
              "input_weight");
}

void oscillator_forward(const Tensor& states, const Tensor& inputs, const std::optional<Tensor>& input_weight,
                        const Tensor& coupling, const Tensor& acts, double gamma, double keep, double drive,
                        double dt, int64_t substeps) {
  TORCH_CHECK(states.is_contiguous() && acts.is_contiguous(), "oscillator_forward: states and acts must be contiguous");
  check_inputs(inputs, input_weight, acts.size(2), "oscillator_forward");
  const Tensor coupling_t = coupling.t();
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "oscillator_forward", [&] {
    over_bands(states.size(1), [&](int64_t r0, int64_t count) {
      oscillator_forward_band<scalar_t>(states.narrow(1, r0, count), inputs.narrow(1, r0, count), input_weight,
                                        coupling_t, acts.narrow(1, r0, count), gamma, keep, drive, dt, substeps);
    });
  });
}

void oscillator_backward(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const Tensor& acts,
                         const Tensor& coupling, const Tensor& grad_u, double gamma, double keep, double drive,
                         double dt, int64_t substeps) {
  check_rows(grad_h, grad_states, "oscillator_backward");
  TORCH_CHECK(acts.is_contiguous() && grad_u.is_contiguous(), "oscillator_backward: acts and grad_u must be contiguous");
  AT_DISPATCH_FLOATING_TYPES(grad_h.scalar_type(), "oscillator_backward", [&] {
    over_bands(grad_h.size(0), [&](int64_t r0, int64_t count) {
      oscillator_backward_band<scalar_t>(grad_h.narrow(0, r0, count), band_of(grad_states, r0, count),
                                         acts.narrow(1, r0, count), coupling, grad_u.narrow(1, r0, count), gamma,
                                         keep, drive, dt, substeps);
    });
  });
}

void lem_forward(const Tensor& states, const Tensor& drives, const std::optional<Tensor>& drive_weight,
                 const Tensor& w_h, const Tensor& w_z, const Tensor& rates, const Tensor& targets, double dt,
                 int64_t substeps) {
  TORCH_CHECK(states.is_contiguous() && rates.is_contiguous() && targets.is_contiguous(),
              "lem_forward: states, rates and targets must be contiguous");
  check_inputs(drives, drive_weight, 4 * targets.size(2), "lem_forward");
  const Tensor w_h_t = w_h.t(), w_z_t = w_z.t();
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "lem_forward", [&] {
    over_bands(states.size(1), [&](int64_t r0, int64_t count) {
      lem_forward_band<scalar_t>(states.narrow(1, r0, count), drives.narrow(1, r0, count), drive_weight, w_h_t, w_z_t,
                                 rates.narrow(1, r0, count),
                                 targets.narrow(1, r0, count), dt, substeps);
    });
  });
}

void lem_backward(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const Tensor& states,
                  const Tensor& rates, const Tensor& targets, const Tensor& w_h, const Tensor& w_z,
                  const Tensor& grad_drives, double dt, int64_t substeps) {
  check_rows(grad_h, grad_states, "lem_backward");
  TORCH_CHECK(states.is_contiguous() && rates.is_contiguous() && targets.is_contiguous() && grad_drives.is_contiguous(),
              "lem_backward: states, rates, targets and grad_drives must be contiguous");
  AT_DISPATCH_FLOATING_TYPES(grad_h.scalar_type(), "lem_backward", [&] {
    over_bands(grad_h.size(0), [&](int64_t r0, int64_t count) {
      lem_backward_band<scalar_t>(grad_h.narrow(0, r0, count), band_of(grad_states, r0, count),
                                  states.narrow(1, r0, count), rates.narrow(1, r0, count),
                                  targets.narrow(1, r0, count), w_h, w_z, grad_drives.narrow(1, r0, count), dt,
                                  substeps);
    });
  });
}

void linear_tanh_forward(const Tensor& states, const Tensor& inputs, const std::optional<Tensor>& input_weight,
                         const Tensor& both, const Tensor& acts, double eps, int64_t substeps) {
  TORCH_CHECK(states.is_contiguous() && acts.is_contiguous(), "linear_tanh_forward: states and acts must be contiguous");
  check_inputs(inputs, input_weight, acts.size(2), "linear_tanh_forward");
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "linear_tanh_forward", [&] {
    over_bands(states.size(1), [&](int64_t r0, int64_t count) {
      linear_tanh_forward_band<scalar_t>(states.narrow(1, r0, count), inputs.narrow(1, r0, count), input_weight,
                                         both, acts.narrow(1, r0, count), eps, substeps);
    });
  });
}

void linear_tanh_backward(const Tensor& grad_h, const std::optional<Tensor>& grad_states, const Tensor& acts,
                          const Tensor& both, const Tensor& grad_ps, double eps, int64_t substeps) {
  check_rows(grad_h, grad_states, "linear_tanh_backward");
  TORCH_CHECK(acts.is_contiguous() && grad_ps.is_contiguous(), "linear_tanh_backward: acts and grad_ps must be contiguous");
  const Tensor both_t = both.t();
  AT_DISPATCH_FLOATING_TYPES(grad_h.scalar_type(), "linear_tanh_backward", [&] {
    over_bands(grad_h.size(0), [&](int64_t r0, int64_t count) {
      linear_tanh_backward_band<scalar_t>(grad_h.narrow(0, r0, count), band_of(grad_states, r0, count),
                                          acts.narrow(1, r0, count), both_t, grad_ps.narrow(1, r0, count), eps,
                                          substeps);
    });
  });
}

void independent_forward(const Tensor& zs, const Tensor& ys, const Tensor& acts, const Tensor& drive, const Tensor& w,
                         const Tensor& delta, double alpha, int64_t hold) {
  TORCH_CHECK(zs.stride(2) == 1 && ys.stride(2) == 1 && drive.stride(2) == 1 && acts.is_contiguous() &&
                  w.is_contiguous() && delta.is_contiguous(),
              "independent_forward: acts, w and delta must be contiguous, zs, ys and drive unit-stride in their last "
              "dimension");
  AT_DISPATCH_FLOATING_TYPES(zs.scalar_type(), "independent_forward", [&] {
    over_bands(zs.size(1), [&](int64_t r0, int64_t count) {
      independent_forward_band<scalar_t>(zs.narrow(1, r0, count), ys.narrow(1, r0, count), acts.narrow(1, r0, count),
                                         drive.narrow(1, r0, count), w, delta, alpha, hold);
    });
  });
}

void independent_backward(const Tensor& gz, const Tensor& gy, const std::optional<Tensor>& grad_states, int64_t start,
                          const std::optional<Tensor>& from_above, const Tensor& zs, const Tensor& ys,
                          const Tensor& acts, const Tensor& w, const Tensor& delta, double alpha, int64_t substeps,
                          const Tensor& g, const Tensor& sums) {
  check_rows(gz, grad_states, "independent_backward");
  TORCH_CHECK(gy.is_contiguous() && (!from_above || from_above->is_contiguous()) && zs.stride(2) == 1 &&
                  ys.stride(2) == 1 && acts.is_contiguous() && g.is_contiguous() && sums.is_contiguous() &&
                  w.is_contiguous() && delta.is_contiguous(),
              "independent_backward: zs and ys must be unit-stride in their last dimension, the rest contiguous");
  AT_DISPATCH_FLOATING_TYPES(gz.scalar_type(), "independent_backward", [&] {
    over_bands(gz.size(0), [&](int64_t r0, int64_t count) {
      std::optional<Tensor> band_above;
      if (from_above) band_above = from_above->narrow(1, r0, count);
      independent_backward_band<scalar_t>(gz.narrow(0, r0, count), gy.narrow(0, r0, count),
                                          band_of(grad_states, r0, count), start, band_above,
                                          zs.narrow(1, r0, count), ys.narrow(1, r0, count), acts.narrow(1, r0, count),
                                          w, delta, alpha, substeps, g.narrow(1, r0, count), sums.narrow(1, r0, count));
    });
  });
}

}  // namespace


TORCH_LIBRARY_FRAGMENT(odernn_fused, m) {
  m.def("oscillator_forward(Tensor(a!) states, Tensor inputs, Tensor? input_weight, Tensor coupling, Tensor(b!) acts, "
        "float gamma, float keep, float drive, float dt, int substeps) -> ()");
  m.def("oscillator_backward(Tensor(a!) grad_h, Tensor? grad_states, Tensor acts, Tensor coupling, "
        "Tensor(b!) grad_u, float gamma, float keep, float drive, float dt, int substeps) -> ()");
  m.def("lem_forward(Tensor(a!) states, Tensor drives, Tensor? drive_weight, Tensor w_h, Tensor w_z, "
        "Tensor(b!) rates, Tensor(c!) targets, float dt, int substeps) -> ()");
  m.def("lem_backward(Tensor(a!) grad_h, Tensor? grad_states, Tensor states, Tensor rates, Tensor targets, "
        "Tensor w_h, Tensor w_z, Tensor(b!) grad_drives, float dt, int substeps) -> ()");
  m.def("linear_tanh_forward(Tensor(a!) states, Tensor inputs, Tensor? input_weight, Tensor both, Tensor(b!) acts, "
        "float eps, int substeps) -> ()");
  m.def("independent_forward(Tensor(a!) zs, Tensor(b!) ys, Tensor(c!) acts, Tensor drive, Tensor w, Tensor delta, "
        "float alpha, int hold) -> ()");
  m.def("independent_backward(Tensor(a!) gz, Tensor(b!) gy, Tensor? grad_states, int start, Tensor? from_above, "
        "Tensor zs, Tensor ys, Tensor acts, Tensor w, Tensor delta, float alpha, int substeps, Tensor(c!) g, "
        "Tensor(d!) sums) -> ()");
  m.def("linear_tanh_backward(Tensor(a!) grad_h, Tensor? grad_states, Tensor acts, Tensor both, "
        "Tensor(b!) grad_ps, float eps, int substeps) -> ()");
}

TORCH_LIBRARY_IMPL(odernn_fused, CPU, m) {
  m.impl("oscillator_forward", &oscillator_forward);
  m.impl("oscillator_backward", &oscillator_backward);
  m.impl("lem_forward", &lem_forward);
  m.impl("lem_backward", &lem_backward);
  m.impl("independent_forward", &independent_forward);
  m.impl("independent_backward", &independent_backward);
  m.impl("linear_tanh_forward", &linear_tanh_forward);
  m.impl("linear_tanh_backward", &linear_tanh_backward);
}
