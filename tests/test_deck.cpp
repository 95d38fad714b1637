// The input deck: defaults, overrides, and precise errors (key and line) for bad input.
#include "sama/app/deck.hpp"
#include "sama/core/error.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace {
using namespace sama;
using app::parse_deck;

/// The message of the sama::Error thrown by f, or "" if none was thrown.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& text, const std::vector<std::string>& overrides,
                  const std::vector<std::string>& fragments) {
  const std::string msg = error_of([&] { parse_deck(text, "deck.toml", overrides); });
  ASSERT_FALSE(msg.empty()) << "no error for:\n" << text;
  for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
}

TEST(Deck, EmptyDeckGivesDocumentedDefaults) {
  const auto d = parse_deck("", "empty");
  EXPECT_EQ(d.data.source, "fashion_mnist");
  EXPECT_EQ(d.data.meta_size, 1000);
  EXPECT_EQ(d.meta.hidden, 100);
  EXPECT_EQ(d.meta.method, "sama");
  EXPECT_TRUE(d.meta.normalize);
  EXPECT_EQ(d.model.hidden, (std::vector<long>{256, 256}));
}

TEST(Deck, ReadsValuesAndIntegerForFloat) {
  const auto d = parse_deck("[train]\nseed = 7\nbatch_size = 32\n[meta]\nlr = 1\nmethod = \"none\"\n"
                            "[model]\nhidden = [10, 20, 30]\n",
                            "d");
  EXPECT_EQ(d.train.seed, 7);
  EXPECT_EQ(d.train.batch_size, 32);
  EXPECT_DOUBLE_EQ(d.meta.lr, 1.0);
  EXPECT_EQ(d.meta.method, "none");
  EXPECT_EQ(d.model.hidden, (std::vector<long>{10, 20, 30}));
}

TEST(Deck, UnknownKeyNamedWithLine) {
  expect_error("[train]\nseed = 1\nsed = 2\n", {}, {"deck.toml:3", "unknown key 'train.sed'"});
  expect_error("[trian]\nseed = 1\n", {}, {"deck.toml:2", "unknown key 'trian.seed'"});
}

TEST(Deck, WrongTypeNamedWithLine) {
  expect_error("[train]\n\nbatch_size = \"big\"\n", {}, {"deck.toml:3", "train.batch_size", "integer", "string"});
  expect_error("[meta]\nnormalize = 1\n", {}, {"deck.toml:2", "meta.normalize", "boolean"});
  expect_error("[model]\nhidden = [1, \"a\"]\n", {}, {"deck.toml:2", "model.hidden"});
  expect_error("train = 3\n", {}, {"deck.toml:1", "'train' must be a table"});
}

TEST(Deck, OutOfRangeNamedWithLine) {
  expect_error("[data]\nnoise_rate = 1.5\n", {}, {"deck.toml:2", "data.noise_rate", "out of range"});
  expect_error("[train]\nbatch_size = 0\n", {}, {"deck.toml:2", "train.batch_size", "out of range"});
  expect_error("[meta]\nalpha = 0.0\n", {}, {"deck.toml:2", "meta.alpha", "greater than 0"});
  expect_error("[meta]\nlr = nan\n", {}, {"deck.toml:2", "meta.lr", "finite"});
  expect_error("[meta]\nmethod = \"darts\"\n", {}, {"deck.toml:2", "meta.method", "none, sama, finite_difference"});
}

TEST(Deck, ContradictionsRejected) {
  expect_error("[data]\nsource = \"hdf5\"\n", {}, {"data.train_file"});
  expect_error("[data]\nnoise_type = \"none\"\nnoise_rate = 0.2\n", {}, {"noise_rate", "none"});
  expect_error("[optimizer]\nname = \"sgd\"\nnesterov = true\n", {}, {"nesterov", "momentum"});
  expect_error("[optimizer]\nname = \"adam\"\nmomentum = 0.9\n", {}, {"momentum", "sgd"});
}

TEST(Deck, OptimizerKeysReadWrittenAndRoundTripped) {
  const auto d = parse_deck("[optimizer]\nname = \"rmsprop\"\nalpha = 0.9\ncentered = true\nmomentum = 0.5\n", "d");
  EXPECT_EQ(d.optimizer.cfg.name, "rmsprop");
  EXPECT_DOUBLE_EQ(d.optimizer.cfg.alpha, 0.9);
  EXPECT_TRUE(d.optimizer.cfg.centered);
  EXPECT_DOUBLE_EQ(d.optimizer.cfg.momentum, 0.5);
  const auto a = parse_deck("[optimizer]\nname = \"adagrad\"\ninitial_accumulator = 0.1\n", "d");
  EXPECT_DOUBLE_EQ(a.optimizer.cfg.initial_accumulator, 0.1);
  const auto l = parse_deck("[optimizer]\nname = \"lion\"\nlion_temperature = 0.01\n", "d");
  EXPECT_EQ(l.optimizer.cfg.lion_surrogate, "tanh");
  EXPECT_DOUBLE_EQ(l.optimizer.cfg.lion_temperature, 0.01);
  const auto z = parse_deck("[optimizer]\nname = \"lion\"\nlion_surrogate = \"zero\"\n", "d");
  EXPECT_EQ(z.optimizer.cfg.lion_surrogate, "zero");
  EXPECT_EQ(parse_deck("[optimizer]\nname = \"lamb\"\n", "d").optimizer.cfg.name, "lamb");
  // The resolved deck writes every key, and reads back to the same values.
  for (const auto* deck : {&d, &a, &l, &z}) {
    const std::string text = app::to_toml(*deck);
    for (const char* key : {"alpha", "centered", "initial_accumulator", "lion_surrogate", "lion_temperature"})
      EXPECT_NE(text.find(std::string("\n") + key + " = "), std::string::npos) << key << " not in:\n" << text;
    const auto e = parse_deck(text, "resolved");
    const std::string again = app::to_toml(e);
    EXPECT_EQ(again.substr(again.find("\n[")), text.substr(text.find("\n[")));
    EXPECT_EQ(e.optimizer.cfg.name, deck->optimizer.cfg.name);
    EXPECT_EQ(e.optimizer.cfg.alpha, deck->optimizer.cfg.alpha);
    EXPECT_EQ(e.optimizer.cfg.centered, deck->optimizer.cfg.centered);
    EXPECT_EQ(e.optimizer.cfg.initial_accumulator, deck->optimizer.cfg.initial_accumulator);
    EXPECT_EQ(e.optimizer.cfg.lion_surrogate, deck->optimizer.cfg.lion_surrogate);
    EXPECT_EQ(e.optimizer.cfg.lion_temperature, deck->optimizer.cfg.lion_temperature);
  }
}

TEST(Deck, OptimizerKeysValidated) {
  expect_error("[optimizer]\nname = \"adamax\"\n", {},
               {"deck.toml:2", "optimizer.name", "adagrad", "rmsprop", "lion", "lamb"});
  expect_error("[optimizer]\nname = \"rmsprop\"\nalpha = 1.0\n", {},
               {"deck.toml:3", "optimizer.alpha", "out of range"});
  expect_error("[optimizer]\nname = \"adagrad\"\ninitial_accumulator = -1\n", {},
               {"deck.toml:3", "optimizer.initial_accumulator", "out of range"});
  expect_error("[optimizer]\nname = \"lion\"\nlion_surrogate = \"sigmoid\"\n", {},
               {"deck.toml:3", "optimizer.lion_surrogate", "tanh, identity, zero"});
  expect_error("[optimizer]\nname = \"lion\"\nlion_temperature = 0\n", {},
               {"deck.toml:3", "optimizer.lion_temperature", "greater than 0"});
  expect_error("[optimizer]\nname = \"lion\"\ncentered = 1\n", {}, {"deck.toml:3", "optimizer.centered", "boolean"});
}

TEST(Deck, OptimizerOptionsOfAnotherOptimizerRejected) {
  // Momentum: sgd and rmsprop; nesterov: sgd only.
  EXPECT_NO_THROW(parse_deck("[optimizer]\nname = \"rmsprop\"\nmomentum = 0.9\n", "d"));
  expect_error("[optimizer]\nname = \"lamb\"\nmomentum = 0.9\n", {}, {"optimizer.momentum", "sgd", "rmsprop", "lamb"});
  expect_error("[optimizer]\nname = \"rmsprop\"\nmomentum = 0.9\nnesterov = true\n", {},
               {"optimizer.nesterov", "sgd", "rmsprop"});
  expect_error("[optimizer]\nname = \"adam\"\ncentered = true\n", {}, {"optimizer.centered", "rmsprop", "adam"});
  expect_error("[optimizer]\nname = \"sgd\"\nalpha = 0.9\n", {}, {"optimizer.alpha", "rmsprop", "sgd"});
  expect_error("[optimizer]\nname = \"rmsprop\"\ninitial_accumulator = 0.1\n", {},
               {"optimizer.initial_accumulator", "adagrad", "rmsprop"});
  expect_error("[optimizer]\nname = \"lamb\"\nlion_surrogate = \"identity\"\n", {},
               {"optimizer.lion_surrogate", "lion", "lamb"});
  expect_error("[optimizer]\nname = \"adamw\"\nlion_temperature = 0.1\n", {},
               {"optimizer.lion_temperature", "lion", "adamw"});
  // The temperature belongs to the tanh surrogate.
  expect_error("[optimizer]\nname = \"lion\"\nlion_surrogate = \"identity\"\nlion_temperature = 0.1\n", {},
               {"optimizer.lion_temperature", "tanh", "identity"});
  // The same through --set, and every new key accepted at its optimizer.
  expect_error("", {"optimizer.name=adagrad", "optimizer.centered=true"}, {"optimizer.centered", "adagrad"});
  EXPECT_NO_THROW(parse_deck("", "d", {"optimizer.name=lion", "optimizer.lion_surrogate=identity"}));
  EXPECT_NO_THROW(parse_deck("", "d", {"optimizer.name=adagrad", "optimizer.initial_accumulator=0.1"}));
}

TEST(Deck, SyntaxErrorNamedWithLine) {
  expect_error("[train]\nseed = = 1\n", {}, {"deck.toml:2", "syntax"});
}

TEST(Deck, OverridesApplyAndAreValidated) {
  const auto d = parse_deck("[train]\nseed = 1\n", "d",
                            {"train.seed=5", "meta.method=none", "model.hidden=[8,8]", "data.noise_rate=0.25"});
  EXPECT_EQ(d.train.seed, 5);
  EXPECT_EQ(d.meta.method, "none");
  EXPECT_EQ(d.model.hidden, (std::vector<long>{8, 8}));
  EXPECT_DOUBLE_EQ(d.data.noise_rate, 0.25);
  expect_error("", {"train.sed=5"}, {"--set", "unknown key 'train.sed'"});
  expect_error("", {"train.seed=abc"}, {"--set", "train.seed", "integer"});
  expect_error("", {"seed=5"}, {"section.key=value"});
}

TEST(Deck, ResolvedDeckRoundTrips) {
  const auto d = parse_deck("[train]\nseed = 9\n[meta]\nalpha = 0.5\n[model]\nhidden = [3]\n", "orig",
                            {"optimizer.name=sgd", "optimizer.momentum=0.9"});
  const std::string text = app::to_toml(d);
  const auto e = parse_deck(text, "resolved");
  const std::string again = app::to_toml(e);
  EXPECT_EQ(again.substr(again.find("\n[")), text.substr(text.find("\n[")));
  EXPECT_EQ(e.train.seed, 9);
  EXPECT_DOUBLE_EQ(e.meta.alpha, 0.5);
  EXPECT_EQ(e.optimizer.cfg.name, "sgd");
  EXPECT_DOUBLE_EQ(e.optimizer.cfg.momentum, 0.9);
  EXPECT_EQ(e.model.hidden, std::vector<long>{3});
}

TEST(Deck, MissingFileNamed) {
  const std::string msg = error_of([] { app::load_deck("/nonexistent/dir/deck.toml"); });
  EXPECT_NE(msg.find("/nonexistent/dir/deck.toml"), std::string::npos) << msg;
}

TEST(Deck, ShippedDecksParse) {
  for (const char* name : {"fmnist_reweight.toml", "fmnist_baseline.toml", "smoke.toml"}) {
    const std::string path = std::string(SAMA_SOURCE_DIR) + "/inputs/" + name;
    EXPECT_NO_THROW(app::load_deck(path)) << path;
  }
  const auto base = app::load_deck(std::string(SAMA_SOURCE_DIR) + "/inputs/fmnist_baseline.toml");
  const auto sama = app::load_deck(std::string(SAMA_SOURCE_DIR) + "/inputs/fmnist_reweight.toml");
  EXPECT_EQ(base.meta.method, "none");
  EXPECT_EQ(sama.meta.method, "sama");
  // The baseline differs from the default job in the method only.
  auto same = base;
  same.meta.method = "sama";
  same.file = sama.file;
  EXPECT_EQ(app::to_toml(same), app::to_toml(sama));
}

TEST(Deck, HypergradientKeysReadWrittenAndRoundTripped) {
  const auto dflt = parse_deck("", "d");
  EXPECT_EQ(dflt.meta.k, 5);
  EXPECT_EQ(dflt.meta.hvp, "exact");
  EXPECT_EQ(dflt.meta.diagnose_every, 0);
  EXPECT_EQ(dflt.meta.diagnose_reference, "cg");
  const auto d = parse_deck("[meta]\nmethod = \"cg\"\nk = 12\ncg_damping = 0.5\nhvp = \"finite_difference\"\n"
                            "hvp_radius = 0.001\ndiagnose_every = 4\ndiagnose_reference = \"unrolled\"\ndiagnose_k = 7\n",
                            "d");
  EXPECT_EQ(d.meta.method, "cg");
  EXPECT_EQ(d.meta.k, 12);
  EXPECT_DOUBLE_EQ(d.meta.cg_damping, 0.5);
  EXPECT_EQ(d.meta.hvp, "finite_difference");
  EXPECT_DOUBLE_EQ(d.meta.hvp_radius, 0.001);
  EXPECT_EQ(d.meta.diagnose_every, 4);
  EXPECT_EQ(d.meta.diagnose_reference, "unrolled");
  EXPECT_EQ(d.meta.diagnose_k, 7);
  const auto e = parse_deck(app::to_toml(d), "resolved");
  EXPECT_EQ(app::to_toml(e).substr(app::to_toml(e).find("\n[")), app::to_toml(d).substr(app::to_toml(d).find("\n[")));
  EXPECT_EQ(e.meta.k, 12);
  EXPECT_EQ(e.meta.diagnose_reference, "unrolled");
  const auto n = parse_deck("", "d", {"meta.method=neumann", "meta.neumann_alpha=0.05", "meta.k=3"});
  EXPECT_DOUBLE_EQ(n.meta.neumann_alpha, 0.05);
  for (const char* m : {"sama_jvp", "neumann", "cg", "unrolled"})
    EXPECT_EQ(parse_deck("", "d", {std::string("meta.method=") + m}).meta.method, m);
}

TEST(Deck, HypergradientKeysValidated) {
  expect_error("[meta]\nmethod = \"darts\"\n", {}, {"meta.method", "sama_jvp, neumann, cg, unrolled"});
  expect_error("[meta]\nk = 0\n", {}, {"deck.toml:2", "meta.k", "out of range"});
  expect_error("[meta]\nmethod = \"neumann\"\nneumann_alpha = 0\n", {}, {"meta.neumann_alpha", "greater than 0"});
  expect_error("[meta]\ncg_damping = -1\n", {}, {"meta.cg_damping", "out of range"});
  expect_error("[meta]\nhvp = \"gauss_newton\"\n", {}, {"meta.hvp", "exact, finite_difference"});
  expect_error("[meta]\ndiagnose_reference = \"sama\"\n", {}, {"meta.diagnose_reference", "cg, unrolled"});
  // unrolled reverses sgd, adam and adamw only: the key and the optimizer are named.
  expect_error("[meta]\nmethod = \"unrolled\"\n[optimizer]\nname = \"lion\"\n", {},
               {"meta.method", "unrolled", "optimizer.name", "lion"});
  expect_error("", {"meta.diagnose_every=2", "meta.diagnose_reference=unrolled", "optimizer.name=rmsprop"},
               {"meta.diagnose_reference", "unrolled", "rmsprop"});
  EXPECT_NO_THROW(parse_deck("", "d", {"meta.method=unrolled", "optimizer.name=adamw"}));
  EXPECT_NO_THROW(parse_deck("", "d", {"meta.method=cg", "optimizer.name=lion"}));
  // Keys that the method (or the diagnostic) does not use are contradictions naming the key.
  expect_error("", {"meta.k=3"}, {"meta.k", "\"sama\""});
  expect_error("", {"meta.method=cg", "meta.neumann_alpha=0.5"}, {"meta.neumann_alpha", "neumann", "\"cg\""});
  expect_error("", {"meta.method=neumann", "meta.cg_damping=1"}, {"meta.cg_damping", "\"neumann\""});
  expect_error("", {"meta.method=sama_jvp", "meta.hvp=finite_difference"}, {"meta.hvp", "\"sama_jvp\""});
  expect_error("", {"meta.method=cg", "meta.hvp_radius=0.1"}, {"meta.hvp_radius", "meta.hvp", "exact"});
  expect_error("", {"meta.diagnose_k=3"}, {"meta.diagnose_k", "meta.diagnose_every"});
  expect_error("", {"meta.diagnose_reference=unrolled"}, {"meta.diagnose_reference", "meta.diagnose_every"});
  expect_error("", {"meta.method=none", "meta.diagnose_every=5"}, {"meta.diagnose_every", "\"none\""});
  // ... and are fine where they are used: cg_damping and hvp by a cg reference of a sama run.
  EXPECT_NO_THROW(parse_deck("", "d", {"meta.diagnose_every=5", "meta.cg_damping=2", "meta.hvp=finite_difference"}));
}

TEST(Deck, HypergradientKeysAreResumeIncompatible) {
  const auto saved = parse_deck("", "d", {"meta.method=cg", "meta.k=5"});
  const std::string text = app::to_toml(saved);
  EXPECT_EQ(app::resume_incompatibility(text, saved), "");
  for (const std::vector<std::string>& change :
       {std::vector<std::string>{"meta.method=cg", "meta.k=6"}, {"meta.method=unrolled", "meta.k=5"},
        {"meta.method=cg", "meta.k=5", "meta.cg_damping=1"}, {"meta.method=cg", "meta.k=5", "meta.hvp=finite_difference"},
        {"meta.method=cg", "meta.k=5", "meta.diagnose_every=3"}}) {
    const std::string why = app::resume_incompatibility(text, parse_deck("", "d", change));
    EXPECT_NE(why, "") << change.back();
    EXPECT_NE(why.find("[meta]"), std::string::npos) << why;
  }
}

}  // namespace

namespace {

TEST(Deck, ModelArchitecturesAreValidated) {
  expect_error("[model]\narch = \"transformer\"\n", {}, {"model.arch", "transformer"});
  expect_error("[model]\narch = \"resnet\"\ndepth = 12\n", {}, {"model.depth = 12", "6n + 2"});
  expect_error("[model]\narch = \"cnn\"\nchannels = []\n", {}, {"model.channels"});
  expect_error("[data]\naugment = \"crop_flip\"\n", {}, {"data.augment", "image model"});
  expect_error("[data]\nsynthetic_shape = [784]\n", {}, {"data.synthetic_shape", "[H, W] or [C, H, W]"});
  // A valid ResNet deck resolves with its keys.
  const auto d = sama::app::parse_deck("[model]\narch = \"resnet\"\nblocks = [2, 1]\nwidth = 8\n", "deck.toml", {});
  EXPECT_EQ(d.model.arch, "resnet");
  EXPECT_EQ(d.model.blocks, (std::vector<long>{2, 1}));
  EXPECT_TRUE(d.model.sync_batchnorm);
}

}  // namespace
