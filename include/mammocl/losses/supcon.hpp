#pragma once
/// `supcon`: the Supervised Contrastive loss in the code form of HobbitLong/SupContrast `losses.py`
/// (`SupConLoss`, HEAD 66a8fe5; METHOD.md §4.2), value and exact gradient. On a device backend the
/// argument checks run here and the loss itself is the backend's `B::supcon` op (docs/device_generic.md).
///
/// Input: features of shape (B, V, D): B samples, V views, D components. They are flattened
/// view-major, a = v·B + b (torch.cat(torch.unbind(features, 1), 0)), giving N = V·B vectors z_a. The
/// positives come from labels (y_a = labels[b]), an explicit (B,B) 0/1 mask M (pair (a, c) is positive
/// when M[a mod B][c mod B] = 1), or neither (SimCLR: M = I, the other views of the same sample).
///
/// With anchors I (contrast_mode::all: all N; contrast_mode::one: view 0, a < B), for i ∈ I:
///   A(i) = {0..N−1} \ {i},  s_ij = z_i·z_j / τ,  m_ij = M[i mod B][j mod B] for j ∈ A(i),
///   n_i  = Σ_{j∈A(i)} m_ij,  lse_i = log Σ_{j∈A(i)} exp(s_ij)   (computed as m_i + log Σ exp(s_ij − m_i)
///          with m_i = max_j s_ij over ALL j, self included, as the reference does),
///   ℓ_i  = −(τ/τ_b) · Σ_{j∈A(i)} m_ij (s_ij − lse_i) / (n_i < 1e-6 ? 1 : n_i),
///   L    = (1/|I|) Σ_{i∈I} ℓ_i.
/// An anchor without positives has ℓ_i = 0 (and zero gradient) but still counts in 1/|I|.
/// Gradient, with P_ij = exp(s_ij − lse_i) and g_ij = (τ/τ_b)(P_ij·Σ_k m_ik/n_i' − m_ij/n_i') for
/// j ∈ A(i) (n_i' the guarded denominator; g = 0 for anchors without positives):
///   ∂L/∂z_k = (1/(|I|·τ)) · [ Σ_{j∈A(k)} g_kj z_j  (k ∈ I)  +  Σ_{i∈I, k∈A(i)} g_ik z_i ].
/// With options::normalize the input holds raw projector outputs w, z = w / max(‖w‖, 1e-12), and the
/// gradient is taken with respect to w: ∂L/∂w = (I − z zᵀ) ∂L/∂z / ‖w‖ (∂L/∂z / 1e-12 when ‖w‖ < 1e-12).
/// Without it every row must already have ‖z‖ = 1 within 1e-4.
///
/// Every overload writes ∂L/∂features into `grad` when it is not null (reallocated to the features'
/// shape if needed) and, when `anchor_losses` is not null, ℓ_i for each anchor i ∈ I in view-major order.
/// Computed in double whatever B::scalar_type is, in O(N²·D) time (two double GEMMs on the CPU backend,
/// Z_I Zᵀ and H Z, plus one row-wise log-sum-exp pass) and O(N²) memory; ctx.threads() threads. The
/// result is deterministic for a given thread count.
///
/// Errors (the message names the sample, view, row or value):
///   shape_error   features not (B,V,D) with B,V,D >= 1; labels.size() != B; a label < 0 or, with
///                 options::num_classes > 0, >= num_classes; a mask that is not (B,B) or holds a value
///                 other than 0 or 1; SimCLR (no labels, no mask) with V < 2 (V = 1 with labels or a mask
///                 is legal, as in the reference: such anchors have no positives and add 0); without
///                 options::normalize, a row whose L2 norm differs from 1 by more than 1e-4;
///   numeric_error a NaN or Inf in the features or the mask, or a loss that is not finite;
///   config_error  temperature or base_temperature not finite and > 0, num_classes < 0.
#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/concepts.hpp"
#include "mammocl/layers/host_bridge.hpp"

namespace mammocl::losses {

class supcon {
 public:
  enum class contrast_mode { all, one };
  struct options {
    double temperature = 0.1;       ///< τ: the softmax temperature of s_ij = z_i·z_j / τ
    double base_temperature = 0.1;  ///< τ_b: the loss is scaled by τ/τ_b (METHOD.md: τ_b = τ by default)
    contrast_mode mode = contrast_mode::all;  ///< all: every view is an anchor; one: only view 0
    bool normalize = false;  ///< true: features are raw w, L2-normalised inside (value and gradient)
    int num_classes = 0;     ///< > 0: labels must lie in [0, num_classes); 0: any label >= 0
  };
  /// Tolerance on ‖z‖ − 1 for rows that must already be normalised.
  static constexpr double norm_tolerance = 1e-4;
  /// Lower bound on ‖w‖ in the normalisation (torch.nn.functional.normalize's eps).
  static constexpr double norm_eps = 1e-12;

  supcon() = default;
  explicit supcon(options o) : opt_(o) {
    MAMMOCL_CHECK(std::isfinite(opt_.temperature) && opt_.temperature > 0, config_error,
                  "supcon: temperature ", opt_.temperature, " is not a finite positive number");
    MAMMOCL_CHECK(std::isfinite(opt_.base_temperature) && opt_.base_temperature > 0, config_error,
                  "supcon: base_temperature ", opt_.base_temperature, " is not a finite positive number");
    MAMMOCL_CHECK(opt_.num_classes >= 0, config_error, "supcon: num_classes ", opt_.num_classes, " is negative");
  }
  [[nodiscard]] const options& opts() const noexcept { return opt_; }

  /// Supervised: positives share a label; labels has one entry per sample (B).
  template <Backend B>
  double value_and_gradient(typename B::context& ctx, const tensor<B>& features, std::span<const int> labels,
                            tensor<B>* grad, std::vector<double>* anchor_losses = nullptr) const {
    const index_t nb = check_features(features);
    MAMMOCL_EXPECTS(static_cast<index_t>(labels.size()) == nb, "supcon: ", labels.size(), " labels for ", nb,
                    " samples of features ", features.dims());
    for (index_t b = 0; b < nb; ++b) {
      const int y = labels[static_cast<std::size_t>(b)];
      MAMMOCL_EXPECTS(y >= 0, "supcon: label ", y, " at sample ", b, " is negative");
      MAMMOCL_EXPECTS(opt_.num_classes == 0 || y < opt_.num_classes, "supcon: label ", y, " at sample ", b,
                      " is outside [0, ", opt_.num_classes, ")");
    }
    std::vector<double> m(static_cast<std::size_t>(nb * nb));
    for (index_t a = 0; a < nb; ++a)
      for (index_t c = 0; c < nb; ++c)
        m[static_cast<std::size_t>(a * nb + c)] = labels[static_cast<std::size_t>(a)] == labels[static_cast<std::size_t>(c)] ? 1.0 : 0.0;
    return compute(ctx, features, m, grad, anchor_losses);
  }

  /// Explicit positives as a host (B·B) row-major 0/1 sample mask (the form `B::supcon` takes), e.g. one
  /// built once and reused; the same checks as the tensor-mask overload.
  template <Backend B>
  double value_and_gradient_masked(typename B::context& ctx, const tensor<B>& features, const std::vector<double>& mask,
                                   tensor<B>* grad, std::vector<double>* anchor_losses = nullptr) const {
    const index_t nb = check_features(features);
    MAMMOCL_EXPECTS(static_cast<index_t>(mask.size()) == nb * nb, "supcon: mask must be (", nb, ",", nb,
                    ") for features ", features.dims(), ", got ", mask.size(), " values");
    for (index_t a = 0; a < nb; ++a)
      for (index_t c = 0; c < nb; ++c) {
        const double v = mask[static_cast<std::size_t>(a * nb + c)];
        MAMMOCL_CHECK(std::isfinite(v), numeric_error, "supcon: mask entry (", a, ",", c, ") is ", v);
        MAMMOCL_EXPECTS(v == 0.0 || v == 1.0, "supcon: mask entry (", a, ",", c, ") is ", v, "; it must be 0 or 1");
      }
    return compute(ctx, features, mask, grad, anchor_losses);
  }

  /// Explicit positives: mask (B,B) of 0/1, mask[a][c] = 1 when sample c is a positive of anchor sample a.
  template <Backend B>
  double value_and_gradient(typename B::context& ctx, const tensor<B>& features, const tensor<B>& mask,
                            tensor<B>* grad, std::vector<double>* anchor_losses = nullptr) const {
    const index_t nb = check_features(features);
    MAMMOCL_EXPECTS(mask.rank() == 2 && mask.dim(0) == nb && mask.dim(1) == nb, "supcon: mask must be (", nb, ",",
                    nb, ") for features ", features.dims(), ", got ", mask.dims());
    const auto host_mask = host_bridge::on_host(mask);  // B×B values: no copy on a host backend
    std::vector<double> m(static_cast<std::size_t>(nb * nb));
    for (index_t a = 0; a < nb; ++a)
      for (index_t c = 0; c < nb; ++c) {
        const double v = static_cast<double>(host_mask.item(a)[c]);
        MAMMOCL_CHECK(std::isfinite(v), numeric_error, "supcon: mask entry (", a, ",", c, ") is ", v);
        MAMMOCL_EXPECTS(v == 0.0 || v == 1.0, "supcon: mask entry (", a, ",", c, ") is ", v, "; it must be 0 or 1");
        m[static_cast<std::size_t>(a * nb + c)] = v;
      }
    return compute(ctx, features, m, grad, anchor_losses);
  }

  /// Unsupervised (SimCLR): the positives of a view are the other views of the same sample; needs V >= 2.
  template <Backend B>
  double value_and_gradient(typename B::context& ctx, const tensor<B>& features, tensor<B>* grad,
                            std::vector<double>* anchor_losses = nullptr) const {
    const index_t nb = check_features(features);
    MAMMOCL_EXPECTS(features.dim(1) >= 2, "supcon: without labels or a mask (SimCLR) the positives are the other "
                    "views of the same sample, so at least 2 views are needed; features ", features.dims(),
                    " have V = ", features.dim(1));
    std::vector<double> m(static_cast<std::size_t>(nb * nb), 0.0);
    for (index_t a = 0; a < nb; ++a) m[static_cast<std::size_t>(a * nb + a)] = 1.0;
    return compute(ctx, features, m, grad, anchor_losses);
  }

 private:
  template <class B>
  static index_t check_features(const tensor<B>& f) {
    MAMMOCL_EXPECTS(f.rank() == 3, "supcon: features must be (B, V, D), got ", f.dims());
    MAMMOCL_EXPECTS(f.dim(0) >= 1 && f.dim(1) >= 1 && f.dim(2) >= 1, "supcon: features ", f.dims(),
                    " must have B, V and D >= 1");
    return f.dim(0);
  }

  /// The loss for features (B,V,D) and the sample-level positive mask m (B×B, row-major).
  /// On a device backend this is the backend's `B::supcon` op (the same algebra, order and errors, in double
  /// on the device); on a host backend the code below.
  template <class B>
  double compute(typename B::context& ctx, const tensor<B>& features, const std::vector<double>& m, tensor<B>* grad,
                 std::vector<double>* anchor_losses) const {
    if constexpr (!B::is_host) {
      return B::supcon(ctx, features, m, opt_.temperature, opt_.base_temperature, opt_.mode == contrast_mode::all,
                       opt_.normalize, grad, anchor_losses);
    } else {
      return host_compute(ctx, features, m, grad, anchor_losses);
    }
  }

  template <class B>
  double host_compute(typename B::context& ctx, const tensor<B>& features, const std::vector<double>& m,
                      tensor<B>* grad, std::vector<double>* anchor_losses) const {
    using T = typename B::scalar_type;
    const index_t nb = features.dim(0), nv = features.dim(1), d = features.dim(2), n = nv * nb;
    const index_t na = opt_.mode == contrast_mode::all ? n : nb;
    const auto sz = [](index_t k) { return static_cast<std::size_t>(k); };
    // z (N×D), view-major, in double; norms of the raw rows when normalising.
    std::vector<double> z(sz(n * d)), norm(sz(n), 1.0);
    for (index_t v = 0; v < nv; ++v)
      for (index_t b = 0; b < nb; ++b) {
        const index_t a = v * nb + b;
        const T* src = features.item(b) + v * d;
        double* row = z.data() + a * d;
        double s2 = 0;
        for (index_t k = 0; k < d; ++k) {
          const double x = static_cast<double>(src[k]);
          MAMMOCL_CHECK(std::isfinite(x), numeric_error, "supcon: feature (sample ", b, ", view ", v, ", component ",
                        k, ") is ", x);
          row[k] = x;
          s2 += x * x;
        }
        const double r = std::sqrt(s2);
        if (opt_.normalize) {
          norm[sz(a)] = r;
          const double inv = 1.0 / std::max(r, norm_eps);
          for (index_t k = 0; k < d; ++k) row[k] *= inv;
        } else {
          MAMMOCL_EXPECTS(std::abs(r - 1.0) <= norm_tolerance, "supcon: feature row ", a, " (sample ", b, ", view ", v,
                          ") has L2 norm ", r, ", expected 1 within ", norm_tolerance,
                          "; normalise the features or set options::normalize");
        }
      }

    const double tau = opt_.temperature, scale = opt_.temperature / opt_.base_temperature;
    int threads = 1;
    if constexpr (requires(typename B::context& c) { c.threads(); }) threads = std::max(1, ctx.threads());
    // Row i of g first holds s_ij, then ∂ℓ_i/∂s_ij (scaled by τ/τ_b, zero on the diagonal). Rows are
    // independent, so the log-sum-exp pass is split by rows. The double-precision products run on the CPU backend's GEMM whatever B's scalar type is.
    using host = cpu_backend_f64;
    typename host::context hctx(threads);
    std::vector<double> g(sz(na * n)), ell(sz(na));
    host::gemm(hctx, false, true, na, n, d, 1.0 / tau, z.data(), d, z.data(), d, 0.0, g.data(), n);  // S = Z_I Zᵀ / τ
#pragma omp parallel for num_threads(threads) schedule(static)
    for (index_t i = 0; i < na; ++i) {
      double* gi = g.data() + i * n;
      double mx = -INFINITY;
      for (index_t j = 0; j < n; ++j) mx = std::max(mx, gi[j]);
      const double* mrow = m.data() + (i % nb) * nb;
      double den = 0, npos = 0, pos_sum = 0;
      for (index_t j = 0; j < n; ++j) {
        if (j == i) continue;
        const double mij = mrow[j % nb];
        npos += mij;
        pos_sum += mij * gi[j];
      }
      for (index_t j = 0; j < n; ++j) {  // from here on gi[j] holds exp(s_ij − m_i), 0 for j = i
        gi[j] = j == i ? 0.0 : std::exp(gi[j] - mx);
        den += gi[j];
      }
      const double lse = mx + std::log(den);
      const double nd = npos < 1e-6 ? 1.0 : npos;
      // ℓ_i = −(τ/τ_b) Σ_j m_ij (s_ij − lse_i) / n_i'
      ell[sz(i)] = -scale * (pos_sum - npos * lse) / nd;
      const double w = npos / nd;
      for (index_t j = 0; j < n; ++j)
        gi[j] = j == i ? 0.0 : scale * (w * gi[j] / den - mrow[j % nb] / nd);
    }
    double total = 0;
    for (double l : ell) total += l;
    if (anchor_losses) *anchor_losses = ell;
    const double loss = total / static_cast<double>(na);
    MAMMOCL_CHECK(std::isfinite(loss), numeric_error, "supcon: the loss is not finite (", loss, ")");
    if (!grad) return loss;

    // ∂L/∂z = H Z / (|I| τ) with H = G + Gᵀ, G the |I|×N matrix g padded with zero rows to N×N.
    std::vector<double> h(sz(n * n), 0.0);
    for (index_t i = 0; i < na; ++i)
      for (index_t j = 0; j < n; ++j) {
        h[sz(i * n + j)] += g[sz(i * n + j)];
        h[sz(j * n + i)] += g[sz(i * n + j)];
      }
    std::vector<double> dz(sz(n * d));
    host::gemm(hctx, false, false, n, d, n, 1.0 / (static_cast<double>(na) * tau), h.data(), n, z.data(), d, 0.0,
               dz.data(), d);
    if (grad->dims() != features.dims()) *grad = tensor<B>(features.dims());
    for (index_t v = 0; v < nv; ++v)
      for (index_t b = 0; b < nb; ++b) {
        const index_t a = v * nb + b;
        double* da = dz.data() + a * d;
        T* dst = grad->item(b) + v * d;
        if (opt_.normalize) {
          const double* za = z.data() + a * d;
          const double r = norm[sz(a)];
          if (r > norm_eps) {
            double zg = 0;
            for (index_t k = 0; k < d; ++k) zg += za[k] * da[k];
            for (index_t k = 0; k < d; ++k) dst[k] = static_cast<T>((da[k] - za[k] * zg) / r);
          } else {
            for (index_t k = 0; k < d; ++k) dst[k] = static_cast<T>(da[k] / norm_eps);
          }
        } else {
          for (index_t k = 0; k < d; ++k) dst[k] = static_cast<T>(da[k]);
        }
      }
    return loss;
  }

  options opt_;
};

}  // namespace mammocl::losses
