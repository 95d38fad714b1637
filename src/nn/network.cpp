#include "sama/nn/network.hpp"

namespace sama::nn {

namespace {
template <class T>
Vec<T> arena(const char* label, std::size_t n) {
  return make_vec<T>(label, n);
}
template <class T>
VecU<T> whole(const Vec<T>& v) {
  return v.extent(0) == 0 ? VecU<T>() : VecU<T>(v.data(), v.extent(0));
}
}  // namespace

template <class T>
Network<T>::Network(std::unique_ptr<Sequential<T>> root, std::size_t max_batch)
    : root_(std::move(root)), max_batch_(max_batch) {
  SAMA_REQUIRE(root_ != nullptr && root_->size() > 0, "network: no modules");
  SAMA_REQUIRE(max_batch_ > 0, "network: the maximum batch must be positive");
  const ModuleSizes s = root_->sizes(max_batch_);
  buffers_ = arena<T>("sama::Network::buffers", root_->num_buffers());
  saved_ = arena<T>("sama::Network::saved", s.saved);
  scratch_ = arena<T>("sama::Network::scratch", s.scratch);
  out_ = arena<T>("sama::Network::output", max_batch_ * root_->out());
}

template <class T>
std::size_t Network<T>::workspace_bytes(bool forward_mode) const {
  const ModuleSizes s = root_->sizes(max_batch_);
  std::size_t n = root_->num_buffers() + s.saved + s.scratch + max_batch_ * root_->out();
  if (forward_mode) n += s.tangent + s.upstream + 2 * max_batch_ * root_->out();
  return n * sizeof(T);
}

template <class T>
void Network<T>::init(VecU<T> theta, Rng& rng) {
  SAMA_REQUIRE(theta.extent(0) == num_params(), "network init: θ has {} entries, the model needs {}", theta.extent(0),
               num_params());
  root_->init(theta, buffers(), rng);
}

template <class T>
std::vector<std::pair<std::size_t, std::size_t>> Network<T>::param_groups() const {
  std::vector<std::pair<std::size_t, std::size_t>> g;
  root_->param_groups(0, g);
  return g;
}

template <class T>
std::vector<std::pair<std::size_t, std::size_t>> Network<T>::ready_groups() const {
  std::vector<std::pair<std::size_t, std::size_t>> g;
  for (std::size_t i = root_->size(); i-- > 0;) {
    const std::size_t np = root_->child(i).num_params();
    if (np > 0) g.emplace_back(root_->param_offset(i), np);
  }
  return g;
}

template <class T>
void Network<T>::ensure_tangent_workspace() {
  if (out_dot_.extent(0) != 0) return;
  const ModuleSizes s = root_->sizes(max_batch_);
  tangent_ = arena<T>("sama::Network::tangent", s.tangent);
  upstream_ = arena<T>("sama::Network::upstream", s.upstream);
  out_dot_ = arena<T>("sama::Network::output_dot", max_batch_ * root_->out());
  dy_ = arena<T>("sama::Network::dy", max_batch_ * root_->out());
}

template <class T>
ModuleCtx<T> Network<T>::ctx(VecU<const T> theta, bool forward_mode) const {
  ModuleCtx<T> c;
  c.mode = mode_;
  c.batch_sum = pass_sum_;
  c.p = theta;
  c.buffers = buffers();
  c.saved = whole(saved_);
  c.scratch = whole(scratch_);
  if (forward_mode) {
    c.tangent = whole(tangent_);
    c.upstream = whole(upstream_);
  }
  return c;
}

template <class T>
MatU<const T> Network<T>::forward(VecU<const T> theta, MatU<const T> x, Mode mode) {
  batch_ = x.extent(0);
  tangent_batch_ = linear_batch_ = 0;  // the tangents and linearisation of an earlier forward no longer apply
  SAMA_REQUIRE(batch_ > 0 && batch_ <= max_batch_, "network forward: batch {} outside the workspace's 1..{}", batch_,
               max_batch_);
  SAMA_REQUIRE(x.extent(1) == in(), "network forward: input has {} features, the model expects {} ({})", x.extent(1),
               in(), to_string(in_shape()));
  SAMA_REQUIRE(theta.extent(0) == num_params(), "network forward: θ has {} entries, the model needs {}",
               theta.extent(0), num_params());
  input_ = x;
  mode_ = mode;
  pass_sum_ = batch_sum_;
  MatU<T> y(out_.data(), batch_, out());
  root_->forward(ctx(theta, false), x, y);
  return as_const(y);
}

template <class T>
void Network<T>::backward(VecU<const T> theta, MatU<const T> dy, VecU<T> grad, MatU<T> dx, const GradReady& on_ready) {
  SAMA_REQUIRE(batch_ > 0 && dy.extent(0) == batch_ && dy.extent(1) == out(),
               "network backward: dy is {}x{}, expected {}x{}", dy.extent(0), dy.extent(1), batch_, out());
  SAMA_REQUIRE(grad.extent(0) == num_params(), "network backward: gradient has {} entries, expected {}",
               grad.extent(0), num_params());
  ModuleCtx<T> c = ctx(theta, false);
  c.sample_sq = sample_sq_;
  if (sample_sq_.data() != nullptr)
    SAMA_REQUIRE(sample_sq_.extent(0) >= batch_, "per-sample gradient norms: buffer of {} for a batch of {}",
                 sample_sq_.extent(0), batch_);
  root_->backward_reporting(c, input_, MatU<const T>(out_.data(), batch_, out()), dy, dx, grad, &on_ready);
}

template <class T>
MatU<const T> Network<T>::forward_tangent(VecU<const T> theta, VecU<const T> theta_dot) {
  SAMA_REQUIRE(batch_ > 0 && input_.data() != nullptr, "network forward_tangent: no forward pass to linearise");
  SAMA_REQUIRE(theta.extent(0) == num_params() && theta_dot.extent(0) == num_params(),
               "network forward_tangent: θ has {} and θ̇ {} entries, the model needs {}", theta.extent(0),
               theta_dot.extent(0), num_params());
  ensure_tangent_workspace();
  MatU<T> y_dot(out_dot_.data(), batch_, out());
  root_->forward_tangent(ctx(theta, true), theta_dot, input_, MatU<const T>(),
                         MatU<const T>(out_.data(), batch_, out()), y_dot);
  tangent_batch_ = batch_;
  return as_const(y_dot);
}

template <class T>
void Network<T>::backward_linearize(VecU<const T> theta, MatU<const T> dy, VecU<T> grad) {
  SAMA_REQUIRE(batch_ > 0 && dy.extent(0) == batch_ && dy.extent(1) == out(),
               "network backward_linearize: dy is {}x{}, expected {}x{}", dy.extent(0), dy.extent(1), batch_, out());
  SAMA_REQUIRE(grad.extent(0) == num_params(), "network backward_linearize: gradient has {} entries, expected {}",
               grad.extent(0), num_params());
  ensure_tangent_workspace();
  MatU<T> kept(dy_.data(), batch_, out());
  Kokkos::deep_copy(kept, dy);
  root_->backward_reporting(ctx(theta, true), input_, MatU<const T>(out_.data(), batch_, out()), as_const(kept),
                            MatU<T>(), grad, nullptr);
  linear_batch_ = batch_;
}

template <class T>
void Network<T>::backward_tangent(VecU<const T> theta, VecU<const T> theta_dot, MatU<const T> dy_dot,
                                  VecU<T> grad_dot, const GradReady& on_ready) {
  SAMA_REQUIRE(batch_ > 0 && tangent_batch_ == batch_ && linear_batch_ == batch_,
               "network backward_tangent: backward_linearize and forward_tangent must follow the last forward "
               "(batch {})",
               batch_);
  SAMA_REQUIRE(dy_dot.extent(0) == batch_ && dy_dot.extent(1) == out() && grad_dot.extent(0) == num_params(),
               "network backward_tangent: ḋy is {}x{} (expected {}x{}), gradient tangent of {} entries (expected {})",
               dy_dot.extent(0), dy_dot.extent(1), batch_, out(), grad_dot.extent(0), num_params());
  root_->backward_tangent_reporting(ctx(theta, true), theta_dot, input_, MatU<const T>(),
                                    MatU<const T>(out_.data(), batch_, out()),
                                    MatU<const T>(out_dot_.data(), batch_, out()),
                                    MatU<const T>(dy_.data(), batch_, out()), dy_dot, MatU<T>(), grad_dot, &on_ready);
}

template class Network<float>;
template class Network<double>;

}  // namespace sama::nn
