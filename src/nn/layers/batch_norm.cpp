#include "sama/nn/layers/batch_norm.hpp"

#include "sama/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace sama::nn {

namespace {
using Team = Kokkos::TeamPolicy<ExecSpace>;
using Member = Team::member_type;

/// Flat index of element j of channel c's n = B·HW values in [B, C, HW].
KOKKOS_INLINE_FUNCTION std::size_t channel_at(std::size_t j, std::size_t c, std::size_t C, std::size_t HW) {
  const std::size_t b = j / HW;
  return (b * C + c) * HW + (j - b * HW);
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
  s.scratch = std::max(4 * C + 1, batch * C);
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
  const std::size_t n = B * HW, total = B * C * HW;
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
    T* red = ptr(ctx.scratch, 2 * C + 1, "scratch");  // [n, Σ(x − K) [C], Σ(x − K)² [C]]
    const bool sync = ctx.batch_sum != nullptr;
    // Per channel: the shift K (the running mean when synchronised, else this batch's mean, rounded to
    // T so that the finalisation below adds back exactly the K used here), kept in `mean` meanwhile.
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_sums", Team(static_cast<int>(C), Kokkos::AUTO), KOKKOS_LAMBDA(const Member& t) {
          const std::size_t c = static_cast<std::size_t>(t.league_rank());
          double K = 0;
          if (sync) {
            K = double(rmean[c]);
          } else {
            double s = 0;
            Kokkos::parallel_reduce(
                Kokkos::TeamThreadRange(t, n),
                [&](const std::size_t j, double& a) { a += double(xp[channel_at(j, c, C, HW)]); }, s);
            K = n > 0 ? double(T(s / double(n))) : 0.0;
          }
          double s1 = 0, s2 = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, n),
              [&](const std::size_t j, double& a) { a += double(xp[channel_at(j, c, C, HW)]) - K; }, s1);
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, n),
              [&](const std::size_t j, double& a) {
                const double d = double(xp[channel_at(j, c, C, HW)]) - K;
                a += d * d;
              },
              s2);
          Kokkos::single(Kokkos::PerTeam(t), [&]() {
            mean[c] = T(K);
            red[1 + c] = T(s1);
            red[1 + C + c] = T(s2);
            if (c == 0) red[0] = T(n);
          });
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
      "sama::BatchNorm::forward", Range(0, total), KOKKOS_LAMBDA(const std::size_t i) {
        const std::size_t c = (i / HW) % C;
        yp[i] = gamma[c] * ((xp[i] - mean[c]) * istd[c]) + beta[c];
      });
}

template <class T>
void BatchNorm<T>::backward(const ModuleCtx<T>& ctx, MatU<const T> x, MatU<const T> /*y*/, MatU<const T> dy,
                            MatU<T> dx, VecU<T> dp) const {
  const std::size_t B = x.extent(0), C = channels(), HW = this->in_shape().h * this->in_shape().w;
  const std::size_t n = B * HW, total = B * C * HW;
  const T* xp = x.data();
  const T* dyp = dy.data();
  const T* gamma = ptr(ctx.p, 2 * C, "parameter");
  const T* mean = ptr(ctx.saved, 2 * C + 1, "saved");
  const T* istd = mean + C;
  const T* count = mean + 2 * C;
  T* dgamma = ptr(dp, 2 * C, "gradient");
  T* dbeta = dgamma + C;
  // dγ = Σ dy·x̂, dβ = Σ dy over this rank's batch.
  Kokkos::parallel_for(
      "sama::BatchNorm::backward_params", Team(static_cast<int>(C), Kokkos::AUTO), KOKKOS_LAMBDA(const Member& t) {
        const std::size_t c = static_cast<std::size_t>(t.league_rank());
        double a = 0, b = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(t, n), [&](const std::size_t j, double& s) { s += double(dyp[channel_at(j, c, C, HW)]); },
            a);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(t, n),
            [&](const std::size_t j, double& s) {
              const std::size_t i = channel_at(j, c, C, HW);
              s += double(dyp[i]) * double((xp[i] - mean[c]) * istd[c]);
            },
            b);
        Kokkos::single(Kokkos::PerTeam(t), [&]() {
          dgamma[c] = T(b);
          dbeta[c] = T(a);
        });
      });
  if (ctx.sample_sq.data() != nullptr && B * C > 0) {
    // q[b·C + c] = (Σ_hw dy·x̂)² + (Σ_hw dy)², then sample_sq[b] += Σ_c q[b·C + c].
    T* q = ptr(ctx.scratch, B * C, "scratch");
    T* sq = ptr(ctx.sample_sq, B, "sample_sq");
    Kokkos::parallel_for(
        "sama::BatchNorm::backward_sample_sq", Team(static_cast<int>(B * C), Kokkos::AUTO),
        KOKKOS_LAMBDA(const Member& t) {
          const std::size_t r = static_cast<std::size_t>(t.league_rank()), c = r % C;
          double a = 0, b = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, HW), [&](const std::size_t k, double& s) { s += double(dyp[r * HW + k]); }, a);
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, HW),
              [&](const std::size_t k, double& s) {
                const std::size_t i = r * HW + k;
                s += double(dyp[i]) * double((xp[i] - mean[c]) * istd[c]);
              },
              b);
          Kokkos::single(Kokkos::PerTeam(t), [&]() { q[r] = T(a * a + b * b); });
        });
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
    T* red = ptr(ctx.scratch, 2 * C, "scratch");
    Kokkos::deep_copy(VecU<T>(red, 2 * C), VecU<T>(dgamma, 2 * C));
    sum_over_ranks(*ctx.batch_sum, red, 2 * C);
    g = red;
  }
  // dx = γ s (dy − Σdy/n − x̂ Σdy·x̂/n) with batch statistics; γ s dy with running ones.
  Kokkos::parallel_for(
      "sama::BatchNorm::backward", Range(0, total), KOKKOS_LAMBDA(const std::size_t i) {
        const std::size_t c = (i / HW) % C;
        const T s = istd[c];
        if (batch) {
          const T inv_n = T(1) / count[0];
          const T xh = (xp[i] - mean[c]) * s;
          dxp[i] = gamma[c] * s * (dyp[i] - g[C + c] * inv_n - xh * (g[c] * inv_n));
        } else {
          dxp[i] = gamma[c] * s * dyp[i];
        }
      });
}

template <class T>
void BatchNorm<T>::forward_tangent(const ModuleCtx<T>& ctx, VecU<const T> p_dot, MatU<const T> x,
                                   MatU<const T> x_dot, MatU<const T> /*y*/, MatU<T> y_dot) const {
  const std::size_t B = x.extent(0), C = channels(), HW = this->in_shape().h * this->in_shape().w;
  const std::size_t n = B * HW, total = B * C * HW;
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
    T* red = ptr(ctx.scratch, 2 * C, "scratch");
    Kokkos::parallel_for(
        "sama::BatchNorm::forward_tangent_sums", Team(static_cast<int>(C), Kokkos::AUTO),
        KOKKOS_LAMBDA(const Member& t) {
          const std::size_t c = static_cast<std::size_t>(t.league_rank());
          double a = 0, b = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, n), [&](const std::size_t j, double& s) { s += double(xd[channel_at(j, c, C, HW)]); },
              a);
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, n),
              [&](const std::size_t j, double& s) {
                const std::size_t i = channel_at(j, c, C, HW);
                s += double(xd[i]) * double((xp[i] - mean[c]) * istd[c]);
              },
              b);
          Kokkos::single(Kokkos::PerTeam(t), [&]() {
            red[c] = T(a);
            red[C + c] = T(b);
          });
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
      "sama::BatchNorm::forward_tangent", Range(0, total), KOKKOS_LAMBDA(const std::size_t i) {
        const std::size_t c = (i / HW) % C;
        const T s = istd[c];
        const T xh = (xp[i] - mean[c]) * s;
        T v = T(0);
        if (pd != nullptr) v = pd[c] * xh + pd[C + c];
        if (xd != nullptr) v += gamma[c] * (s * (xd[i] - mdot[c] - xh * mm[c]));
        ydp[i] = v;
      });
}

template <class T>
void BatchNorm<T>::backward_tangent(const ModuleCtx<T>& ctx, VecU<const T> p_dot, MatU<const T> x,
                                    MatU<const T> x_dot, MatU<const T> /*y*/, MatU<const T> /*y_dot*/,
                                    MatU<const T> dy, MatU<const T> dy_dot, MatU<T> dx_dot, VecU<T> dp_dot) const {
  const std::size_t B = x.extent(0), C = channels(), HW = this->in_shape().h * this->in_shape().w;
  const std::size_t n = B * HW, total = B * C * HW;
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
  T* red = ptr(ctx.scratch, 4 * C, "scratch");
  Kokkos::parallel_for(
      "sama::BatchNorm::backward_tangent_sums", Team(static_cast<int>(C), Kokkos::AUTO),
      KOKKOS_LAMBDA(const Member& t) {
        const std::size_t c = static_cast<std::size_t>(t.league_rank());
        const T s = istd[c];
        double a = 0, b = 0, e = 0, f = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(t, n), [&](const std::size_t j, double& v) { v += double(dyp[channel_at(j, c, C, HW)]); },
            a);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(t, n),
            [&](const std::size_t j, double& v) {
              const std::size_t i = channel_at(j, c, C, HW);
              v += double(dyp[i]) * double((xp[i] - mean[c]) * s);
            },
            b);
        if (ddy != nullptr) {
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, n), [&](const std::size_t j, double& v) { v += double(ddy[channel_at(j, c, C, HW)]); },
              e);
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, n),
              [&](const std::size_t j, double& v) {
                const std::size_t i = channel_at(j, c, C, HW);
                v += double(ddy[i]) * double((xp[i] - mean[c]) * s);
              },
              f);
        }
        if (xd != nullptr) {
          double h = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(t, n),
              [&](const std::size_t j, double& v) {
                const std::size_t i = channel_at(j, c, C, HW);
                const T xh = (xp[i] - mean[c]) * s;
                v += double(dyp[i]) * double(s * (xd[i] - mdot[c] - xh * mm[c]));
              },
              h);
          f += h;
        }
        Kokkos::single(Kokkos::PerTeam(t), [&]() {
          dgd[c] = T(f);
          dbd[c] = T(e);
          red[c] = T(a);
          red[C + c] = T(b);
          red[2 * C + c] = T(e);
          red[3 * C + c] = T(f);
        });
      });
  if (dx_dot.data() == nullptr) return;
  T* dxd = dx_dot.data();
  const bool batch = ctx.mode != Mode::eval;
  if (batch && ctx.batch_sum != nullptr) sum_over_ranks(*ctx.batch_sum, red, 4 * C);
  // R{dx} = (γ̇ s + γ ṡ) g + γ s (ḋy − Ȧ − R{x̂} B − x̂ Ḃ), g = dy − A − x̂ B, ṡ = −s² m, with
  // A = Σdy/n, B = Σdy·x̂/n and their tangents (all 0 with the running statistics).
  Kokkos::parallel_for(
      "sama::BatchNorm::backward_tangent", Range(0, total), KOKKOS_LAMBDA(const std::size_t i) {
        const std::size_t c = (i / HW) % C;
        const T s = istd[c];
        const T xh = (xp[i] - mean[c]) * s;
        T A = T(0), Bc = T(0), Ad = T(0), Bd = T(0);
        if (batch) {
          const T inv_n = T(1) / count[0];
          A = red[c] * inv_n;
          Bc = red[C + c] * inv_n;
          Ad = red[2 * C + c] * inv_n;
          Bd = red[3 * C + c] * inv_n;
        }
        const T gd = pd != nullptr ? pd[c] : T(0);
        const T sd = xd != nullptr ? -s * s * mm[c] : T(0);
        const T xhd = xd != nullptr ? s * (xd[i] - mdot[c] - xh * mm[c]) : T(0);
        const T dd = ddy != nullptr ? ddy[i] : T(0);
        const T g = dyp[i] - A - xh * Bc;
        dxd[i] = (gd * s + gamma[c] * sd) * g + gamma[c] * s * (dd - Ad - xhd * Bc - xh * Bd);
      });
}

template class BatchNorm<float>;
template class BatchNorm<double>;

}  // namespace sama::nn
