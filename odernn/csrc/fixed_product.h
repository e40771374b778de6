// The walks' per-step matrix products, whose right-hand operand is the same at every step of a walk (A^T in a
// forward walk, A in its reverse): out (rows, n) = x (rows, k) W (k, n). Where torch's BLAS provides the
// packed-operand interface (cblas_sgemm_pack / cblas_sgemm_compute: Intel MKL in torch's x86 builds, recent
// OpenBLAS) and the dtype is float, W is packed once per walk into the library's internal layout and every step
// multiplies with it, instead of each product repacking W (a tenth of a step's product time for 128 x 128 on
// AVX-512). Elsewhere, and for operands it cannot pass (rows other than those packed for, a column stride
// other than 1), at::mm_out / addmm_. The symbols are declared weak, so a torch without them still loads the
// library and takes the fallback.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>

extern "C" {
std::size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}

namespace odernn_walks {

class FixedProduct {
 public:
  // Products of (rows, k) inputs with alpha ``weight`` (k, n), of any strides (a transposed view is packed as
  // such).
  FixedProduct(at::Tensor weight, int64_t rows, double alpha = 1.0)
      : weight_(std::move(weight)), rows_(rows), alpha_(alpha) {
    const int64_t k = weight_.size(0), n = weight_.size(1);
    if (weight_.scalar_type() != at::kFloat || !packing_available() || rows <= 0 || k <= 0 || n <= 0) return;
    int trans = kNoTrans;
    int64_t ld = weight_.stride(0);
    at::Tensor source = weight_;
    if (weight_.stride(1) != 1 || ld < n) {
      if (weight_.stride(0) == 1 && weight_.stride(1) >= k) {  // the transpose of a row-major (n, k) matrix
        trans = kTrans;
        ld = weight_.stride(1);
      } else {
        source = weight_.contiguous();
        ld = n;
      }
    }
    packed_ = at::empty({static_cast<int64_t>(cblas_sgemm_pack_get_size(kBMatrix, rows, n, k))}, at::kByte);
    cblas_sgemm_pack(kRowMajor, kBMatrix, trans, rows, n, k, static_cast<float>(alpha), source.data_ptr<float>(), ld,
                     static_cast<float*>(packed_.data_ptr()));
  }

  // out = alpha x W, or with ``accumulate`` out += alpha x W.
  void operator()(const at::Tensor& out, const at::Tensor& x, bool accumulate = false) const {
    if (packed_.defined() && x.size(0) == rows_ && x.stride(1) == 1 && out.stride(1) == 1) {
      cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, rows_, weight_.size(1), weight_.size(0), x.data_ptr<float>(),
                          x.stride(0), static_cast<const float*>(packed_.data_ptr()), weight_.size(1),
                          accumulate ? 1.0f : 0.0f, out.data_ptr<float>(), out.stride(0));
      return;
    }
    at::Tensor target = out;
    if (accumulate) target.addmm_(x, weight_, 1.0, alpha_);
    else if (alpha_ == 1.0) at::mm_out(target, x, weight_);
    else at::mm_out(target, x, weight_).mul_(alpha_);
  }

  static bool packing_available() {
    return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
  }

 private:
  // the CBLAS enumerations (cblas.h)
  static constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
  at::Tensor weight_;
  int64_t rows_;
  double alpha_;
  at::Tensor packed_;  // undefined: the fallback
};

}  // namespace odernn_walks
