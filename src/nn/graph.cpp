#include "sama/nn/graph.hpp"

#include <algorithm>

namespace sama::nn {

template <class T>
void add_into(MatU<T> a, MatU<const T> b) {
  const std::size_t n = a.extent(0) * a.extent(1);
  T* ap = a.data();
  const T* bp = b.data();
  Kokkos::parallel_for("sama::Residual::add", Range(0, n), KOKKOS_LAMBDA(const std::size_t i) { ap[i] += bp[i]; });
}

namespace {
/// y = a + b element-wise.
template <class T>
void sum_of(MatU<T> y, MatU<const T> a, MatU<const T> b) {
  const std::size_t n = y.extent(0) * y.extent(1);
  T* yp = y.data();
  const T* ap = a.data();
  const T* bp = b.data();
  Kokkos::parallel_for("sama::Residual::sum", Range(0, n), KOKKOS_LAMBDA(const std::size_t i) { yp[i] = ap[i] + bp[i]; });
}
}  // namespace

// ------------------------------------------------------------------------------------------ Sequential

template <class T>
Module<T>& Sequential<T>::add(std::unique_ptr<Module<T>> m) {
  SAMA_REQUIRE(m != nullptr, "Sequential::add: no module");
  SAMA_REQUIRE(m->in_shape() == this->out_shape(), "Sequential: {} expects input {}, but the previous output is {}",
               m->describe(), to_string(m->in_shape()), to_string(this->out_shape()));
  param_off_.push_back(num_params_);
  buffer_off_.push_back(num_buffers_);
  num_params_ += m->num_params();
  num_buffers_ += m->num_buffers();
  this->set_out_shape(m->out_shape());
  children_.push_back(std::move(m));
  layout_.act.resize(children_.size());
  layout_.off.resize(children_.size());
  layout_batch_ = 0;
  return *children_.back();
}

template <class T>
std::string Sequential<T>::describe() const {
  std::string s;
  for (const auto& c : children_) s += (s.empty() ? "" : " -> ") + c->describe();
  return s;
}

template <class T>
const typename Sequential<T>::Layout& Sequential<T>::layout(std::size_t batch) const {
  if (batch == layout_batch_) return layout_;
  Layout& L = layout_;
  const std::size_t n = children_.size();
  std::size_t acts = 0, widest = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    L.act[i] = acts;
    acts += batch * children_[i]->out();
    widest = std::max(widest, children_[i]->out());
  }
  L.pingpong = batch * widest;
  ModuleSizes at{acts, acts, acts, 2 * L.pingpong};
  std::size_t child_scratch = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const ModuleSizes s = children_[i]->sizes(batch);
    L.off[i] = ModuleSizes{at.saved, at.tangent, at.upstream, 2 * L.pingpong};
    at.saved += s.saved;
    at.tangent += s.tangent;
    at.upstream += s.upstream;
    child_scratch = std::max(child_scratch, s.scratch);
  }
  L.total = ModuleSizes{at.saved, at.tangent, at.upstream, 2 * L.pingpong + child_scratch};
  layout_batch_ = batch;
  return L;
}

template <class T>
ModuleSizes Sequential<T>::sizes(std::size_t batch) const {
  return layout(batch).total;
}

template <class T>
ModuleCtx<T> Sequential<T>::child_ctx(const ModuleCtx<T>& c, std::size_t i, std::size_t batch) const {
  const Layout& L = layout(batch);
  const Module<T>& m = *children_[i];
  const ModuleSizes s = m.sizes(batch);
  ModuleCtx<T> k;
  k.mode = c.mode;
  k.batch_sum = c.batch_sum;
  k.sample_sq = c.sample_sq;
  k.p = region(c.p, param_off_[i], m.num_params());
  k.buffers = region(c.buffers, buffer_off_[i], m.num_buffers());
  k.saved = region(c.saved, L.off[i].saved, s.saved);
  k.tangent = region(c.tangent, L.off[i].tangent, s.tangent);
  k.upstream = region(c.upstream, L.off[i].upstream, s.upstream);
  k.scratch = region(c.scratch, L.off[i].scratch, s.scratch);
  return k;
}

template <class T>
MatU<const T> Sequential<T>::child_output(const ModuleCtx<T>& c, std::size_t i, std::size_t batch) const {
  SAMA_REQUIRE(i + 1 < children_.size(), "Sequential::child_output: child {} of {} (the last one's is the output)", i,
               children_.size());
  return as_const(region_mat(c.saved, layout(batch).act[i], batch, children_[i]->out()));
}

template <class T>
void Sequential<T>::init(VecU<T> p, VecU<T> buffers, Rng& rng) const {
  for (std::size_t i = 0; i < children_.size(); ++i)
    children_[i]->init(region(p, param_off_[i], children_[i]->num_params()),
                       region(buffers, buffer_off_[i], children_[i]->num_buffers()), rng);
}

template <class T>
void Sequential<T>::param_groups(std::size_t offset, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  for (std::size_t i = 0; i < children_.size(); ++i) children_[i]->param_groups(offset + param_off_[i], out);
}

template <class T>
void Sequential<T>::forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const {
  SAMA_REQUIRE(!children_.empty(), "Sequential::forward: no modules");
  const std::size_t b = x.extent(0), n = children_.size();
  const Layout& L = layout(b);
  MatU<const T> cur = x;
  for (std::size_t i = 0; i < n; ++i) {
    MatU<T> out = i + 1 == n ? y : region_mat(c.saved, L.act[i], b, children_[i]->out());
    children_[i]->forward(child_ctx(c, i, b), cur, out);
    cur = as_const(out);
  }
}

template <class T>
void Sequential<T>::backward_reporting(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy,
                                       MatU<T> dx, VecU<T> dp, const GradReady* on_ready) const {
  const std::size_t b = x.extent(0), n = children_.size();
  const Layout& L = layout(b);
  const bool keep = c.upstream.data() != nullptr;
  MatU<const T> upstream = dy;
  bool use_a = true;
  for (std::size_t i = n; i-- > 0;) {
    const Module<T>& m = *children_[i];
    MatU<const T> xi = i == 0 ? x : as_const(region_mat(c.saved, L.act[i - 1], b, m.in()));
    MatU<const T> yi = i + 1 == n ? y : as_const(region_mat(c.saved, L.act[i], b, m.out()));
    MatU<T> down = dx;
    if (i > 0) {
      if (keep) {
        down = region_mat(c.upstream, L.act[i - 1], b, m.in());
      } else {
        down = region_mat(c.scratch, use_a ? 0 : L.pingpong, b, m.in());
        use_a = !use_a;
      }
    }
    const std::size_t np = m.num_params();
    m.backward(child_ctx(c, i, b), xi, yi, upstream, down, region(dp, param_off_[i], np));
    if (np > 0 && on_ready && *on_ready) (*on_ready)(param_off_[i], np);
    upstream = as_const(down);
  }
}

template <class T>
void Sequential<T>::forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                    MatU<const T> y, MatU<T> y_dot) const {
  const std::size_t b = x.extent(0), n = children_.size();
  const Layout& L = layout(b);
  MatU<const T> cur = x, cur_dot = x_dot;
  for (std::size_t i = 0; i < n; ++i) {
    const Module<T>& m = *children_[i];
    MatU<const T> yi = i + 1 == n ? y : as_const(region_mat(c.saved, L.act[i], b, m.out()));
    MatU<T> yi_dot = i + 1 == n ? y_dot : region_mat(c.tangent, L.act[i], b, m.out());
    m.forward_tangent(child_ctx(c, i, b), region(p_dot, param_off_[i], m.num_params()), cur, cur_dot, yi, yi_dot);
    cur = yi;
    cur_dot = as_const(yi_dot);
  }
}

template <class T>
void Sequential<T>::backward_tangent_reporting(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x,
                                               MatU<const T> x_dot, MatU<const T> y, MatU<const T> y_dot,
                                               MatU<const T> dy, MatU<const T> dy_dot, MatU<T> dx_dot, VecU<T> dp_dot,
                                               const GradReady* on_ready) const {
  const std::size_t b = x.extent(0), n = children_.size();
  const Layout& L = layout(b);
  SAMA_REQUIRE(n == 1 || c.upstream.data() != nullptr,
               "Sequential::backward_tangent: the upstream gradients of a backward that kept them are needed");
  MatU<const T> up_dot = dy_dot;
  bool use_a = true;
  for (std::size_t i = n; i-- > 0;) {
    const Module<T>& m = *children_[i];
    MatU<const T> xi = i == 0 ? x : as_const(region_mat(c.saved, L.act[i - 1], b, m.in()));
    MatU<const T> xi_dot = i == 0 ? x_dot : as_const(region_mat(c.tangent, L.act[i - 1], b, m.in()));
    MatU<const T> yi = i + 1 == n ? y : as_const(region_mat(c.saved, L.act[i], b, m.out()));
    MatU<const T> yi_dot = i + 1 == n ? y_dot : as_const(region_mat(c.tangent, L.act[i], b, m.out()));
    MatU<const T> dyi = i + 1 == n ? dy : as_const(region_mat(c.upstream, L.act[i], b, m.out()));
    MatU<T> down_dot = dx_dot;
    if (i > 0) {
      down_dot = region_mat(c.scratch, use_a ? 0 : L.pingpong, b, m.in());
      use_a = !use_a;
    }
    const std::size_t np = m.num_params();
    m.backward_tangent(child_ctx(c, i, b), region(p_dot, param_off_[i], np), xi, xi_dot, yi, yi_dot, dyi, up_dot,
                       down_dot, region(dp_dot, param_off_[i], np));
    if (np > 0 && on_ready && *on_ready) (*on_ready)(param_off_[i], np);
    up_dot = as_const(down_dot);
  }
}

// -------------------------------------------------------------------------------------------- Residual

template <class T>
Residual<T>::Residual(std::unique_ptr<Sequential<T>> body, std::unique_ptr<Sequential<T>> shortcut)
    : Module<T>(body ? body->in_shape() : Shape{}, body ? body->out_shape() : Shape{}),
      body_(std::move(body)),
      shortcut_(std::move(shortcut)) {
  SAMA_REQUIRE(body_ != nullptr && body_->size() > 0, "Residual: the body has no modules");
  if (shortcut_) {
    SAMA_REQUIRE(shortcut_->size() > 0 && shortcut_->in_shape() == body_->in_shape() &&
                     shortcut_->out_shape() == body_->out_shape(),
                 "Residual: the shortcut maps {} to {}, the body {} to {}", to_string(shortcut_->in_shape()),
                 to_string(shortcut_->out_shape()), to_string(body_->in_shape()), to_string(body_->out_shape()));
  } else {
    SAMA_REQUIRE(body_->in_shape() == body_->out_shape(),
                 "Residual: an identity shortcut needs a body that keeps the shape, not {} to {}",
                 to_string(body_->in_shape()), to_string(body_->out_shape()));
  }
}

template <class T>
std::string Residual<T>::describe() const {
  return "residual[" + body_->describe() + (shortcut_ ? " | " + shortcut_->describe() : std::string(" | identity")) +
         "]";
}

template <class T>
ModuleSizes Residual<T>::sizes(std::size_t batch) const {
  const ModuleSizes b = body_->sizes(batch), s = shortcut_ ? shortcut_->sizes(batch) : ModuleSizes{};
  const std::size_t outs = batch * this->out() * (shortcut_ ? 2 : 1);
  const std::size_t dx = shortcut_ ? batch * this->in() : 0;
  return {outs + b.saved + s.saved, outs + b.tangent + s.tangent, b.upstream + s.upstream,
          dx + std::max(b.scratch, s.scratch)};
}

template <class T>
typename Residual<T>::Parts Residual<T>::parts(const ModuleCtx<T>& c, std::size_t batch) const {
  const ModuleSizes b = body_->sizes(batch), s = shortcut_ ? shortcut_->sizes(batch) : ModuleSizes{};
  const std::size_t out = batch * this->out();
  const std::size_t outs = out * (shortcut_ ? 2 : 1);
  const std::size_t dx = shortcut_ ? batch * this->in() : 0;
  Parts r;
  r.body_out = 0;
  r.short_out = out;
  r.short_dx = 0;
  const std::size_t bp = body_->num_params(), bb = body_->num_buffers();
  auto common = [&](ModuleCtx<T>& k) {
    k.mode = c.mode;
    k.batch_sum = c.batch_sum;
    k.sample_sq = c.sample_sq;
  };
  common(r.body);
  r.body.p = region(c.p, 0, bp);
  r.body.buffers = region(c.buffers, 0, bb);
  r.body.saved = region(c.saved, outs, b.saved);
  r.body.tangent = region(c.tangent, outs, b.tangent);
  r.body.upstream = region(c.upstream, 0, b.upstream);
  r.body.scratch = region(c.scratch, dx, b.scratch);
  if (shortcut_) {
    common(r.shortcut);
    r.shortcut.p = region(c.p, bp, shortcut_->num_params());
    r.shortcut.buffers = region(c.buffers, bb, shortcut_->num_buffers());
    r.shortcut.saved = region(c.saved, outs + b.saved, s.saved);
    r.shortcut.tangent = region(c.tangent, outs + b.tangent, s.tangent);
    r.shortcut.upstream = region(c.upstream, b.upstream, s.upstream);
    r.shortcut.scratch = region(c.scratch, dx, s.scratch);
  }
  return r;
}

template <class T>
void Residual<T>::init(VecU<T> p, VecU<T> buffers, Rng& rng) const {
  body_->init(region(p, 0, body_->num_params()), region(buffers, 0, body_->num_buffers()), rng);
  if (shortcut_)
    shortcut_->init(region(p, body_->num_params(), shortcut_->num_params()),
                    region(buffers, body_->num_buffers(), shortcut_->num_buffers()), rng);
}

template <class T>
void Residual<T>::param_groups(std::size_t offset, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  body_->param_groups(offset, out);
  if (shortcut_) shortcut_->param_groups(offset + body_->num_params(), out);
}

template <class T>
void Residual<T>::forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const {
  const std::size_t b = x.extent(0), out = this->out();
  const Parts k = parts(c, b);
  MatU<T> body_out = region_mat(c.saved, k.body_out, b, out);
  body_->forward(k.body, x, body_out);
  if (shortcut_) {
    MatU<T> short_out = region_mat(c.saved, k.short_out, b, out);
    shortcut_->forward(k.shortcut, x, short_out);
    sum_of(y, as_const(body_out), as_const(short_out));
  } else {
    sum_of(y, as_const(body_out), x);
  }
}

template <class T>
void Residual<T>::backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> /*y*/, MatU<const T> dy, MatU<T> dx,
                           VecU<T> dp) const {
  const std::size_t b = x.extent(0), out = this->out(), bp = body_->num_params();
  const Parts k = parts(c, b);
  body_->backward(k.body, x, as_const(region_mat(c.saved, k.body_out, b, out)), dy, dx, region(dp, 0, bp));
  if (shortcut_) {
    MatU<T> sdx = dx.data() != nullptr ? region_mat(c.scratch, k.short_dx, b, this->in()) : MatU<T>();
    shortcut_->backward(k.shortcut, x, as_const(region_mat(c.saved, k.short_out, b, out)), dy, sdx,
                        region(dp, bp, shortcut_->num_params()));
    if (dx.data() != nullptr) add_into(dx, as_const(sdx));
  } else if (dx.data() != nullptr) {
    add_into(dx, dy);
  }
}

template <class T>
void Residual<T>::forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                  MatU<const T> /*y*/, MatU<T> y_dot) const {
  const std::size_t b = x.extent(0), out = this->out(), bp = body_->num_params();
  const Parts k = parts(c, b);
  MatU<T> body_dot = region_mat(c.tangent, k.body_out, b, out);
  body_->forward_tangent(k.body, region(p_dot, 0, bp), x, x_dot, as_const(region_mat(c.saved, k.body_out, b, out)),
                         body_dot);
  if (shortcut_) {
    MatU<T> short_dot = region_mat(c.tangent, k.short_out, b, out);
    shortcut_->forward_tangent(k.shortcut, region(p_dot, bp, shortcut_->num_params()), x, x_dot,
                               as_const(region_mat(c.saved, k.short_out, b, out)), short_dot);
    sum_of(y_dot, as_const(body_dot), as_const(short_dot));
  } else if (x_dot.data() != nullptr) {
    sum_of(y_dot, as_const(body_dot), x_dot);
  } else {
    Kokkos::deep_copy(y_dot, body_dot);
  }
}

template <class T>
void Residual<T>::backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                   MatU<const T> /*y*/, MatU<const T> /*y_dot*/, MatU<const T> dy, MatU<const T> dy_dot,
                                   MatU<T> dx_dot, VecU<T> dp_dot) const {
  const std::size_t b = x.extent(0), out = this->out(), bp = body_->num_params();
  const Parts k = parts(c, b);
  body_->backward_tangent(k.body, region(p_dot, 0, bp), x, x_dot, as_const(region_mat(c.saved, k.body_out, b, out)),
                          as_const(region_mat(c.tangent, k.body_out, b, out)), dy, dy_dot, dx_dot,
                          region(dp_dot, 0, bp));
  if (shortcut_) {
    const std::size_t sp = shortcut_->num_params();
    MatU<T> sdx = dx_dot.data() != nullptr ? region_mat(c.scratch, k.short_dx, b, this->in()) : MatU<T>();
    shortcut_->backward_tangent(k.shortcut, region(p_dot, bp, sp), x, x_dot,
                                as_const(region_mat(c.saved, k.short_out, b, out)),
                                as_const(region_mat(c.tangent, k.short_out, b, out)), dy, dy_dot, sdx,
                                region(dp_dot, bp, sp));
    if (dx_dot.data() != nullptr) add_into(dx_dot, as_const(sdx));
  } else if (dx_dot.data() != nullptr) {
    add_into(dx_dot, dy_dot);
  }
}

template void add_into<float>(MatU<float>, MatU<const float>);
template void add_into<double>(MatU<double>, MatU<const double>);
template class Sequential<float>;
template class Sequential<double>;
template class Residual<float>;
template class Residual<double>;

}  // namespace sama::nn
