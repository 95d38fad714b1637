#include "sama/nn/layers/batch_norm.hpp"

#include "sama/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace sama::nn {

namespace {
using Team = Kokkos::TeamPolicy<ExecSpace>;
using Member = Team::member_type;

/// Σ_k f(k, acc) over k < n for M sums at once, in double: f adds element k's terms to acc[0..M).
/// L interleaved sets of accumulators (element k goes to set k mod L) break the dependency chain of
/// the additions so that they pipeline; the sets are combined pairwise in a fixed order, so the result
/// depends only on n and the values.
template <int M, int L, class F>
KOKKOS_INLINE_FUNCTION void plane_sums(std::size_t n, const F& f, double (&out)[M]) {
  static_assert(L == 2 || L == 4, "plane_sums: 2 or 4 interleaved accumulators");
  double s[L][M];
  for (int l = 0; l < L; ++l)
    for (int m = 0; m < M; ++m) s[l][m] = 0;
  std::size_t k = 0;
  for (; k + L <= n; k += L)
    for (int l = 0; l < L; ++l) f(k + l, s[l]);
  for (int l = 0; k < n; ++k, ++l) f(k, s[l]);
  for (int m = 0; m < M; ++m) {
    if constexpr (L == 4) {
      out[m] = (s[0][m] + s[1][m]) + (s[2][m] + s[3][m]);
    } else {
      out[m] = s[0][m] + s[1][m];
    }
  }
}

/// Σ_b part[b·C + c] over the B planes of channel c, in double, in order of b.
template <class T>
KOKKOS_INLINE_FUNCTION double channel_sum(const T* part, std::size_t B, std::size_t C, std::size_t c) {
  double s = 0;
  for (std::size_t b = 0; b < B; ++b) s += double(part[b * C + c]);
  return s;
}

template <class T>
T* ptr(VecU<T> v, std::size_t n, const char* what) {
  SAMA_REQUIRE(v.extent(0) >= n && (n == 0 || v.data() != nullptr), "batch norm: the {} region has {} elements, {} needed",
               what, v.extent(0), n);
  return v.data();
}

/// Sums over ranks (after the kernels that wrote the values have finished).
template <class T>
void sum_over_ranks(const BatchSum<T>& f, T* data, std::size_t n) {
  ExecSpace().fence();
  f(data, n);
}
}  // namespace

template <class T>
BatchNorm<T>::BatchNorm(Shape in, double eps, double momentum) : Module<T>(in, in), eps_(eps), momentum_(momentum) {
  SAMA_REQUIRE(in.size() > 0, "batch norm: empty input shape {}", to_string(in));
  SAMA_REQUIRE(eps > 0, "batch norm: eps must be positive (got {})", eps);
  SAMA_REQUIRE(momentum >= 0 && momentum <= 1, "batch norm: momentum must be in [0, 1] (got {})", momentum);
}

template <class T>
std::string BatchNorm<T>::describe() const {
  return "batchnorm(" + to_string(this->in_shape()) + ")";
}

template <class T>
ModuleSizes BatchNorm<T>::sizes(std::size_t batch) const {
  const std::size_t C = channels();
  ModuleSizes s;
  s.saved = 2 * C + 1;
  s.tangent = 2 * C;
  s.scratch = kReduced * C + 1 + kPerPlane * batch * C;
  return s;
}

template <class T>
void BatchNorm<T>::init(VecU<T> p, VecU<T> buffers, Rng& /*rng*/) const {
  const std::size_t C = channels();
  auto hp = Kokkos::create_mirror_view(p);
  for (std::size_t c = 0; c < C; ++c) hp(c) = T(1), hp(C + c) = T(0);
  Kokkos::deep_copy(p, hp);
  auto hb = Kokkos::create_mirror_view(buffers);
  for (std::size_t c = 0; c < C; ++c) hb(c) = T(0), hb(C + c) = T(1);
  Kokkos::deep_copy(buffers, hb);
}

template <class T>
void BatchNorm<T>::forward(const ModuleCtx<T>& ctx, MatU<const T> x, MatU<T> y) const {
  using std::sqrt;
  const std::size_t B = x.extent(0), C = channels(), HW = this->in_shape().h * this->in_shape().w;
  const std::size_t n = B * HW, P = B * C;
  const T* xp = x.data();
  T* yp = y.data();
  const T* gamma = ptr(ctx.p, 2 * C, "parameter");
  const T* beta = gamma + C;
  T* rmean = ptr(ctx.buffers, 2 * C, "buffer");
  T* rvar = rmean + C;
  T* mean = ptr(ctx.saved, 2 * C + 1, "saved");
  T* istd = mean + C;
  T* count = mean + 2 * C;
  const double eps = eps_, mom = momentum_;

  if (ctx.mode == Mode::eval) {
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_running_stats", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) {
          mean[c] = rmean[c];
          istd[c] = T(1.0 / sqrt(double(rvar[c]) + eps));
          if (c == 0) count[0] = T(n);
        });
  } else {
    SAMA_REQUIRE(ctx.mode != Mode::train || ctx.batch_sum != nullptr || n > 1,
                 "batch norm ({}): train mode needs more than one value per channel (batch {}, {} per sample)",
                 to_string(this->in_shape()), B, HW);
    T* red = ptr(ctx.scratch, sizes(B).scratch, "scratch");  // [n, Σ(x − K) [C], Σ(x − K)² [C]]
    T* part = red + kReduced * C + 1;                         // per plane: [Σ(x − K) [P], Σ(x − K)² [P]]
    const bool sync = ctx.batch_sum != nullptr;
    // Per channel: the shift K (the running mean when synchronised, else this batch's mean, rounded to
    // T so that the finalisation below adds back exactly the K used here), kept in `mean` meanwhile.
    if (sync) {
      Kokkos::parallel_for(
          "sama::BatchNorm::forward_shift", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) { mean[c] = rmean[c]; });
    } else {
      Kokkos::parallel_for(
          "sama::BatchNorm::forward_plane_sums", Range(0, P), KOKKOS_LAMBDA(const std::size_t r) {
            const T* xr = xp + r * HW;
            double s[1];
            plane_sums<1, 4>(HW, [&](const std::size_t k, double* a) { a[0] += double(xr[k]); }, s);
            part[r] = T(s[0]);
          });
      Kokkos::parallel_for(
          "sama::BatchNorm::forward_shift", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) {
            mean[c] = n > 0 ? T(channel_sum(part, B, C, c) / double(n)) : T(0);
          });
    }
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_shifted_plane_sums", Range(0, P), KOKKOS_LAMBDA(const std::size_t r) {
          const T* xr = xp + r * HW;
          const double K = double(mean[r % C]);
          double s[2];
          plane_sums<2, 4>(
              HW,
              [&](const std::size_t k, double* a) {
                const double d = double(xr[k]) - K;
                a[0] += d;
                a[1] += d * d;
              },
              s);
          part[r] = T(s[0]);
          part[P + r] = T(s[1]);
        });
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_sums", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) {
          red[1 + c] = T(channel_sum(part, B, C, c));
          red[1 + C + c] = T(channel_sum(part + P, B, C, c));
          if (c == 0) red[0] = T(n);
        });
    if (sync) sum_over_ranks(*ctx.batch_sum, red, 2 * C + 1);
    const bool train = ctx.mode == Mode::train;
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_stats", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) {
          const double nn = double(red[0]);
          const double m1 = nn > 0 ? double(red[1 + c]) / nn : 0.0;
          double var = nn > 0 ? double(red[1 + C + c]) / nn - m1 * m1 : 0.0;
          if (var < 0) var = 0;
          const double mu = double(mean[c]) + m1;
          mean[c] = T(mu);
          istd[c] = T(1.0 / sqrt(var + eps));
          if (c == 0) count[0] = T(nn);
          if (train) {
            rmean[c] = T((1 - mom) * double(rmean[c]) + mom * mu);
            if (nn > 1) rvar[c] = T((1 - mom) * double(rvar[c]) + mom * var * nn / (nn - 1));
          }
        });
  }
  Kokkos::parallel_for(
      "sama::BatchNorm::forward", Team(static_cast<int>(P), Kokkos::AUTO), KOKKOS_LAMBDA(const Member& t) {
        const std::size_t r = static_cast<std::size_t>(t.league_rank()), c = r % C;
        const T g = gamma[c], b = beta[c], m = mean[c], s = istd[c];
        const T* xr = xp + r * HW;
        T* yr = yp + r * HW;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(t, HW),
                             [&](const std::size_t k) { yr[k] = g * ((xr[k] - m) * s) + b; });
      });
}

template <class T>
void BatchNorm<T>::backward(const ModuleCtx<T>& ctx, MatU<const T> x, MatU<const T> /*y*/, MatU<const T> dy,
                            MatU<T> dx, VecU<T> dp) const {
  const std::size_t B = x.extent(0), C = channels(), HW = this->in_shape().h * this->in_shape().w;
  const std::size_t P = B * C;
  const T* xp = x.data();
  const T* dyp = dy.data();
  const T* gamma = ptr(ctx.p, 2 * C, "parameter");
  const T* mean = ptr(ctx.saved, 2 * C + 1, "saved");
  const T* istd = mean + C;
  const T* count = mean + 2 * C;
  T* dgamma = ptr(dp, 2 * C, "gradient");
  T* dbeta = dgamma + C;
  T* red = ptr(ctx.scratch, sizes(B).scratch, "scratch");
  T* part = red + kReduced * C + 1;  // per plane: [Σ dy [P], Σ dy·x̂ [P], (Σ dy)² + (Σ dy·x̂)² [P]]
  T* sq = ctx.sample_sq.data() != nullptr ? ptr(ctx.sample_sq, B, "sample_sq") : nullptr;
  // dγ = Σ dy·x̂, dβ = Σ dy over this rank's batch, from per-plane sums.
  Kokkos::parallel_for(
      "sama::BatchNorm::backward_plane_sums", Range(0, P), KOKKOS_LAMBDA(const std::size_t r) {
        const std::size_t c = r % C;
        const T m = mean[c], s = istd[c];
        const T* xr = xp + r * HW;
        const T* dr = dyp + r * HW;
        double a[2];
        plane_sums<2, 4>(
            HW,
            [&](const std::size_t k, double* v) {
              v[0] += double(dr[k]);
              v[1] += double(dr[k]) * double((xr[k] - m) * s);
            },
            a);
        part[r] = T(a[0]);
        part[P + r] = T(a[1]);
        if (sq != nullptr) part[2 * P + r] = T(a[0] * a[0] + a[1] * a[1]);
      });
  Kokkos::parallel_for(
      "sama::BatchNorm::backward_params", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) {
        dgamma[c] = T(channel_sum(part + P, B, C, c));
        dbeta[c] = T(channel_sum(part, B, C, c));
      });
  if (sq != nullptr) {
    // sample_sq[b] += Σ_c (Σ_hw dy·x̂)² + (Σ_hw dy)² over sample b's planes.
    const T* q = part + 2 * P;
    Kokkos::parallel_for(
        "sama::BatchNorm::backward_sample_sq_sum", Range(0, B), KOKKOS_LAMBDA(const std::size_t b) {
          double s = 0;
          for (std::size_t c = 0; c < C; ++c) s += double(q[b * C + c]);
          sq[b] += T(s);
        });
  }
  if (dx.data() == nullptr) return;
  T* dxp = dx.data();
  const bool batch = ctx.mode != Mode::eval;
  // The sums over the whole (synchronised) batch: [Σ dy·x̂ [C], Σ dy [C]].
  const T* g = dgamma;
  if (batch && ctx.batch_sum != nullptr) {
    Kokkos::deep_copy(VecU<T>(red, 2 * C), VecU<T>(dgamma, 2 * C));
    sum_over_ranks(*ctx.batch_sum, red, 2 * C);
    g = red;
  }
  // dx = γ s (dy − Σdy/n − x̂ Σdy·x̂/n) with batch statistics; γ s dy with running ones.
  Kokkos::parallel_for(
      "sama::BatchNorm::backward", Team(static_cast<int>(P), Kokkos::AUTO), KOKKOS_LAMBDA(const Member& t) {
        const std::size_t r = static_cast<std::size_t>(t.league_rank()), c = r % C;
        const T s = istd[c], m = mean[c], gs = gamma[c] * s;
        const T* xr = xp + r * HW;
        const T* dr = dyp + r * HW;
        T* out = dxp + r * HW;
        if (batch) {
          const T inv_n = T(1) / count[0];
          const T A = g[C + c] * inv_n, Bc = g[c] * inv_n;
          Kokkos::parallel_for(Kokkos::TeamThreadRange(t, HW), [&](const std::size_t k) {
            const T xh = (xr[k] - m) * s;
            out[k] = gs * (dr[k] - A - xh * Bc);
          });
        } else {
          Kokkos::parallel_for(Kokkos::TeamThreadRange(t, HW), [&](const std::size_t k) { out[k] = gs * dr[k]; });
        }
      });
}

template <class T>
void BatchNorm<T>::forward_tangent(const ModuleCtx<T>& ctx, VecU<const T> p_dot, MatU<const T> x,
                                   MatU<const T> x_dot, MatU<const T> /*y*/, MatU<T> y_dot) const {
  const std::size_t B = x.extent(0), C = channels(), HW = this->in_shape().h * this->in_shape().w;
  const std::size_t P = B * C;
  const T* xp = x.data();
  const T* xd = x_dot.data();
  const T* pd = p_dot.data();
  T* ydp = y_dot.data();
  const T* gamma = ptr(ctx.p, 2 * C, "parameter");
  const T* mean = ptr(ctx.saved, 2 * C + 1, "saved");
  const T* istd = mean + C;
  const T* count = mean + 2 * C;
  T* mdot = ptr(ctx.tangent, 2 * C, "tangent");  // μ̇ [C], m = (1/n)Σ x̂·ẋ [C]
  T* mm = mdot + C;
  if (ctx.mode != Mode::eval && xd != nullptr) {
    T* red = ptr(ctx.scratch, sizes(B).scratch, "scratch");  // [Σ ẋ [C], Σ x̂·ẋ [C]]
    T* part = red + kReduced * C + 1;                         // per plane: [Σ ẋ [P], Σ x̂·ẋ [P]]
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_tangent_plane_sums", Range(0, P), KOKKOS_LAMBDA(const std::size_t r) {
          const std::size_t c = r % C;
          const T m = mean[c], s = istd[c];
          const T* xr = xp + r * HW;
          const T* dr = xd + r * HW;
          double a[2];
          plane_sums<2, 4>(
              HW,
              [&](const std::size_t k, double* v) {
                v[0] += double(dr[k]);
                v[1] += double(dr[k]) * double((xr[k] - m) * s);
              },
              a);
          part[r] = T(a[0]);
          part[P + r] = T(a[1]);
        });
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_tangent_sums", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) {
          red[c] = T(channel_sum(part, B, C, c));
          red[C + c] = T(channel_sum(part + P, B, C, c));
        });
    if (ctx.batch_sum != nullptr) sum_over_ranks(*ctx.batch_sum, red, 2 * C);
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_tangent_stats", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) {
          const T inv_n = T(1) / count[0];
          mdot[c] = red[c] * inv_n;
          mm[c] = red[C + c] * inv_n;
        });
  } else {
    Kokkos::deep_copy(VecU<T>(mdot, 2 * C), T(0));
  }
  // ẏ = γ̇ x̂ + β̇ + γ R{x̂},  R{x̂} = s (ẋ − μ̇ − x̂ m).
  Kokkos::parallel_for(
      "sama::BatchNorm::forward_tangent", Team(static_cast<int>(P), Kokkos::AUTO), KOKKOS_LAMBDA(const Member& t) {
        const std::size_t r = static_cast<std::size_t>(t.league_rank()), c = r % C;
        const T s = istd[c], m = mean[c], gc = gamma[c], md = mdot[c], mc = mm[c];
        const T gd = pd != nullptr ? pd[c] : T(0), bd = pd != nullptr ? pd[C + c] : T(0);
        const T* xr = xp + r * HW;
        const T* dr = xd != nullptr ? xd + r * HW : nullptr;
        T* out = ydp + r * HW;
        if (dr != nullptr) {
          Kokkos::parallel_for(Kokkos::TeamThreadRange(t, HW), [&](const std::size_t k) {
            const T xh = (xr[k] - m) * s;
            T v = T(0);
            if (pd != nullptr) v = gd * xh + bd;
            out[k] = v + gc * (s * (dr[k] - md - xh * mc));
          });
        } else {
          Kokkos::parallel_for(Kokkos::TeamThreadRange(t, HW), [&](const std::size_t k) {
            const T xh = (xr[k] - m) * s;
            out[k] = pd != nullptr ? gd * xh + bd : T(0);
          });
        }
      });
}

template <class T>
void BatchNorm<T>::backward_tangent(const ModuleCtx<T>& ctx, VecU<const T> p_dot, MatU<const T> x,
                                    MatU<const T> x_dot, MatU<const T> /*y*/, MatU<const T> /*y_dot*/,
                                    MatU<const T> dy, MatU<const T> dy_dot, MatU<T> dx_dot, VecU<T> dp_dot) const {
  const std::size_t B = x.extent(0), C = channels(), HW = this->in_shape().h * this->in_shape().w;
  const std::size_t P = B * C;
  const T* xp = x.data();
  const T* xd = x_dot.data();
  const T* pd = p_dot.data();
  const T* dyp = dy.data();
  const T* ddy = dy_dot.data();
  const T* gamma = ptr(ctx.p, 2 * C, "parameter");
  const T* mean = ptr(ctx.saved, 2 * C + 1, "saved");
  const T* istd = mean + C;
  const T* count = mean + 2 * C;
  const T* mdot = ptr(ctx.tangent, 2 * C, "tangent");
  const T* mm = mdot + C;
  T* dgd = ptr(dp_dot, 2 * C, "gradient tangent");
  T* dbd = dgd + C;
  // Per channel: [Σ dy, Σ dy·x̂, Σ ḋy, Σ (ḋy·x̂ + dy·R{x̂})]; R{dβ} = Σ ḋy, R{dγ} = Σ (ḋy·x̂ + dy·R{x̂}).
  // The same four per plane first, in [4][P].
  T* red = ptr(ctx.scratch, sizes(B).scratch, "scratch");
  T* part = red + kReduced * C + 1;
  Kokkos::parallel_for(
      "sama::BatchNorm::backward_tangent_plane_sums", Range(0, P), KOKKOS_LAMBDA(const std::size_t r) {
        const std::size_t c = r % C;
        const T m = mean[c], s = istd[c], md = mdot[c], mc = mm[c];
        const T* xr = xp + r * HW;
        const T* dr = dyp + r * HW;
        const T* ddr = ddy != nullptr ? ddy + r * HW : nullptr;
        const T* xdr = xd != nullptr ? xd + r * HW : nullptr;
        double a[4];
        plane_sums<4, 2>(
            HW,
            [&](const std::size_t k, double* v) {
              const T xh = (xr[k] - m) * s;
              const double d = double(dr[k]);
              v[0] += d;
              v[1] += d * double(xh);
              if (ddr != nullptr) {
                v[2] += double(ddr[k]);
                v[3] += double(ddr[k]) * double(xh);
              }
              if (xdr != nullptr) v[3] += d * double(s * (xdr[k] - md - xh * mc));
            },
            a);
        for (int j = 0; j < 4; ++j) part[j * P + r] = T(a[j]);
      });
  Kokkos::parallel_for(
      "sama::BatchNorm::backward_tangent_sums", Range(0, C), KOKKOS_LAMBDA(const std::size_t c) {
        for (std::size_t j = 0; j < 4; ++j) red[j * C + c] = T(channel_sum(part + j * P, B, C, c));
        dgd[c] = red[3 * C + c];
        dbd[c] = red[2 * C + c];
      });
  if (dx_dot.data() == nullptr) return;
  T* dxd = dx_dot.data();
  const bool batch = ctx.mode != Mode::eval;
  if (batch && ctx.batch_sum != nullptr) sum_over_ranks(*ctx.batch_sum, red, 4 * C);
  // R{dx} = (γ̇ s + γ ṡ) g + γ s (ḋy − Ȧ − R{x̂} B − x̂ Ḃ), g = dy − A − x̂ B, ṡ = −s² m, with
  // A = Σdy/n, B = Σdy·x̂/n and their tangents (all 0 with the running statistics).
  Kokkos::parallel_for(
      "sama::BatchNorm::backward_tangent", Team(static_cast<int>(P), Kokkos::AUTO), KOKKOS_LAMBDA(const Member& t) {
        const std::size_t r = static_cast<std::size_t>(t.league_rank()), c = r % C;
        const T s = istd[c], m = mean[c], gc = gamma[c], md = mdot[c], mc = mm[c];
        T A = T(0), Bc = T(0), Ad = T(0), Bd = T(0);
        if (batch) {
          const T inv_n = T(1) / count[0];
          A = red[c] * inv_n;
          Bc = red[C + c] * inv_n;
          Ad = red[2 * C + c] * inv_n;
          Bd = red[3 * C + c] * inv_n;
        }
        const T gd = pd != nullptr ? pd[c] : T(0);
        const T sd = xd != nullptr ? -s * s * mc : T(0);
        const T f1 = gd * s + gc * sd, f2 = gc * s;
        const T* xr = xp + r * HW;
        const T* dr = dyp + r * HW;
        const T* ddr = ddy != nullptr ? ddy + r * HW : nullptr;
        const T* xdr = xd != nullptr ? xd + r * HW : nullptr;
        T* out = dxd + r * HW;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(t, HW), [&](const std::size_t k) {
          const T xh = (xr[k] - m) * s;
          const T xhd = xdr != nullptr ? s * (xdr[k] - md - xh * mc) : T(0);
          const T dd = ddr != nullptr ? ddr[k] : T(0);
          const T g = dr[k] - A - xh * Bc;
          out[k] = f1 * g + f2 * (dd - Ad - xhd * Bc - xh * Bd);
        });
      });
}

template class BatchNorm<float>;
template class BatchNorm<double>;

}  // namespace sama::nn
