// What odernn's compiled walks (fused_walks.cpp, family_walks.cpp) share: the split of the batch into one
// band of rows per thread, the vectorised activations of their elementwise passes, and the held inputs.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/cpu/vec/vec.h>

#include "fixed_product.h"

#include <algorithm>
#include <optional>
#include <utility>

namespace odernn_walks {

// Rows of the batch are independent in every walk, so with several intra-op threads the batch is cut into one
// band of rows per thread and each thread walks its band through all T steps alone: one fork-join per walk
// instead of one per step, and each step's matrix product runs single-threaded on its band (on 2 cores a
// 64 x 128 x 128 product takes ~11 us against ~25 us for the 128-row product on both threads). Bands below
// kMinRows rows are not worth a thread.
constexpr int64_t kMinRows = 16;

template <typename F>
void over_bands(int64_t batch, const F& walk_band) {
  const int64_t bands = std::min<int64_t>(at::get_num_threads(), batch / kMinRows);
  if (bands <= 1 || at::in_parallel_region()) {
    walk_band(int64_t(0), batch);
    return;
  }
  const at::ThreadLocalState caller;  // grad mode and dispatch state are per thread: the bands run under the caller's
  at::parallel_for(0, bands, 1, [&](int64_t first, int64_t last) {
    at::ThreadLocalStateGuard guard(caller);
    for (int64_t p = first; p < last; ++p) {
      const int64_t r0 = batch * p / bands, r1 = batch * (p + 1) / bands;
      walk_band(r0, r1 - r0);
    }
  });
}

template <typename T>
using V = at::vec::Vectorized<T>;

// tanh. In double the vector library's (1 ulp). In float, where the library's costs more than the step's
// band of the matrix product, a rational function with no exp: x p(x^2) / q(x^2), p of degree 6 and q of
// degree 3 in x^2 (the coefficients of Eigen's and XLA's float tanh) on |x| < 9, clamped to [-1, 1]; +-1
// from |x| = 9 on (where float tanh rounds to +-1); x itself below |x| = 4e-4, and for NaN (which fails every
// comparison). Measured against float64 tanh over [-10, 10]: within 7 float ulp, absolute error below 4e-7
// (tests/test_compiled_walks.py). With AVX-512 the division is the 14-bit reciprocal estimate refined by one
// Newton step, and the selections use mask registers (half the instructions of the generic blends).
template <typename T>
inline V<T> tanh_(const V<T>& x) {
  return x.tanh();
}

// x p(x^2) / q(x^2) on x clamped to [-9, 9], as (c p, q) for the caller's division.
inline std::pair<V<float>, V<float>> tanh_rational(const V<float>& x) {
  const V<float> bound(9.0f);
  const V<float> c = at::vec::clamp(x, -bound, bound), c2 = c * c;
  V<float> p(-2.76076847742355e-16f);
  p = at::vec::fmadd(p, c2, V<float>(2.00018790482477e-13f));
  p = at::vec::fmadd(p, c2, V<float>(-8.60467152213735e-11f));
  p = at::vec::fmadd(p, c2, V<float>(5.12229709037114e-08f));
  p = at::vec::fmadd(p, c2, V<float>(1.48572235717979e-05f));
  p = at::vec::fmadd(p, c2, V<float>(6.37261928875436e-04f));
  p = at::vec::fmadd(p, c2, V<float>(4.89352455891786e-03f));
  V<float> q(1.19825839466702e-06f);
  q = at::vec::fmadd(q, c2, V<float>(1.18534705686654e-04f));
  q = at::vec::fmadd(q, c2, V<float>(2.26843463243900e-03f));
  q = at::vec::fmadd(q, c2, V<float>(4.89352518554385e-03f));
  return {c * p, q};
}

#if defined(CPU_CAPABILITY_AVX512)
template <>
inline V<float> tanh_(const V<float>& x) {
  const auto [numerator, q] = tanh_rational(x);
  const __m512 one = _mm512_set1_ps(1.0f), r = _mm512_rcp14_ps(q);
  const __m512 reciprocal = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(q, r, one), r);  // r + r (1 - q r)
  const __m512 inside = at::vec::clamp(V<float>(_mm512_mul_ps(numerator, reciprocal)), V<float>(-1.0f), V<float>(1.0f));
  const __m512 size = _mm512_abs_ps(x);
  const __m512 sign = _mm512_or_ps(_mm512_and_ps(x, _mm512_set1_ps(-0.0f)), one);  // +-1 with x's sign
  const __m512 far = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(size, _mm512_set1_ps(9.0f), _CMP_GE_OQ), inside, sign);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(size, _mm512_set1_ps(4e-4f), _CMP_GE_OQ), x, far);
}
#else
template <>
inline V<float> tanh_(const V<float>& x) {
  const auto [numerator, q] = tanh_rational(x);
  const V<float> one(1.0f), size = x.abs();
  const V<float> inside = at::vec::clamp(numerator / q, -one, one);
  const V<float> sign = V<float>::blendv(-one, one, x > V<float>(0.0f));
  return V<float>::blendv(x, V<float>::blendv(inside, sign, size >= V<float>(9.0f)), size >= V<float>(4e-4f));
}
#endif

template <typename T>
inline V<T> sigmoid(const V<T>& x) {
  return V<T>(T(1)) / (V<T>(T(1)) + x.neg().exp());
}


// The held input u of one step's rows: read from the projected inputs (row stride w n), or, for few input
// features, formed in the pass as u = [x, 1] [V^T; b] from the augmented inputs (row stride m + 1) and the
// (m + 1, w n) input weight, so the (T, B, w n) projection is never written or read.
template <typename T>
struct Inputs {
  const T* rows;
  int64_t stride;
  const T* weight = nullptr;  // (m + 1, w n), or nullptr: rows are u
  int64_t features = 0, width = 0;
  V<T> load(int64_t r, int64_t col, int64_t cnt) const {
    const T* row = rows + r * stride;
    if (weight == nullptr) return V<T>::loadu(row + col, cnt);
    V<T> u = V<T>(row[0]) * V<T>::loadu(weight + col, cnt);
    for (int64_t f = 1; f < features; ++f) u = at::vec::fmadd(V<T>(row[f]), V<T>::loadu(weight + f * width + col, cnt), u);
    return u;
  }
};

// The held inputs of sample k: inputs (T, rows, .) projected, or augmented with input_weight (m + 1, width).
template <typename T>
Inputs<T> held(const at::Tensor& inputs, const std::optional<at::Tensor>& input_weight, int64_t k) {
  Inputs<T> u{inputs.data_ptr<T>() + k * inputs.stride(0), inputs.stride(1)};
  if (input_weight) {
    u.weight = input_weight->data_ptr<T>();
    u.features = input_weight->size(0);
    u.width = input_weight->size(1);
  }
  return u;
}

}  // namespace odernn_walks
