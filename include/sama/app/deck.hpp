#pragma once
// The input deck: one class that parses a TOML file (plus --set overrides), validates every key,
// fills defaults, rejects contradictions with messages naming the key and its line, and writes the
// resolved deck back out next to the results.
#include "sama/optim/optimizer_config.hpp"
#include "sama/optim/schedule.hpp"

#include <string>
#include <vector>

namespace sama::app {

struct DataConfig {
  std::string source = "fashion_mnist";  // "fashion_mnist", "hdf5", "synthetic"
  std::string path = "/usr/share/datasets/fashion-mnist";  // fashion_mnist: directory of IDX files
  std::string train_file;                // hdf5: training file
  std::string test_file;                 // hdf5: test file
  long meta_size = 1000;                 // clean, class-balanced meta set split off the training set
  std::string noise_type = "uniform";    // "none", "uniform", "pair"
  double noise_rate = 0.4;
  long synthetic_train = 4096;           // synthetic: sizes and shape
  long synthetic_test = 1024;
  long synthetic_features = 32;
  long synthetic_classes = 10;
  double synthetic_separation = 1.0;
  std::vector<long> synthetic_shape;     // synthetic samples as images [H, W] or [C, H, W] (overrides
                                         // synthetic_features with the product); empty: flat vectors
  long seed = 0;                         // meta split and label noise (synthetic: the data too);
                                         // 0 = train.seed. Fix it to vary train.seed over one data set.
  std::string keep_mask;                 // train only on the samples a `sama prune` mask keeps ("" = all)
  std::string augment = "none";          // training batches only: "none" or "crop_flip" (random crop
                                         // after zero padding, and horizontal flip), drawn from
                                         // (seed, epoch, sample id)
  long augment_padding = 2;              // crop_flip: zero padding on each side before the crop
};

struct ModelConfig {
  std::string arch = "mlp";               // "mlp", "cnn" or "resnet"
  std::vector<long> hidden = {256, 256};  // mlp: hidden widths; cnn: fully connected widths after the convolutions
  std::string activation = "relu";        // "relu", "gelu", "tanh"
  std::vector<long> channels = {32, 64};  // cnn: channels per stage (conv3x3, batch norm, activation, max pool 2)
  long depth = 8;                         // resnet: 6n + 2 (8, 14, 20, ...): n basic blocks in each of 3 stages
  std::vector<long> blocks;               // resnet: basic blocks per stage (overrides depth), e.g. [1, 1, 1]
  long width = 16;                        // resnet: channels of the stem and the first stage (each stage doubles)
  double width_multiplier = 1.0;          // resnet: scales every stage's channels
  bool batchnorm = true;                  // cnn: batch norm after each convolution (resnet always has it)
  bool sync_batchnorm = true;             // batch statistics over the global batch (one all-reduce per layer)
  double bn_momentum = 0.1;               // running statistics: (1 - m) running + m batch
  double bn_eps = 1e-5;
};

struct TrainConfig {
  long seed = 1;
  long epochs = 40;
  long steps = 0;            // > 0 overrides epochs
  long batch_size = 128;
  long log_interval = 200;   // progress line every N steps
  long eval_interval = 0;    // test accuracy every N steps; 0 = once per epoch
  long eval_batch = 1000;
  long max_nonfinite = 10;   // consecutive steps with a non-finite loss/gradient before the run stops
};

struct OptimizerDeck {
  optim::OptimizerConfig cfg;
  double lr = 0.1;
};

struct MetaConfig {
  std::string method = "sama";  // "none", "sama", "finite_difference", "sama_jvp", "neumann", "cg",
                                // "unrolled" (docs/hypergradients.md)
  long interval = 1;            // a meta step every `interval` base steps ...
  long warmup = 0;              // ... once `warmup` base steps are done
  double alpha = 1.0;           // probe radius: ε = alpha / ‖D ⊙ v‖
  double lr = 1e-3;             // meta optimizer (Adam) learning rate
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  long batch_size = 128;        // meta batch (from the clean meta set)
  long hidden = 100;            // Meta-Weight-Net hidden width
  bool normalize = true;        // weights normalised to mean 1 within a batch
  std::string weight_net = "softmax";  // "softmax": w = B·softmax(MLP_λ(ℓ)) over the batch (default);
                                       // "monotone": a non-increasing log-weight of the loss;
                                       // "sigmoid": the paper's Meta-Weight-Net (docs/reweighting.md)
  double collapse_spread = 0.05;  // collapse detector: the weights' coefficient of variation in a
                                  // logging window below this (while the losses differ) = collapsed
  std::string strategy = "local";  // many ranks: "local" (v, D⊙v, ε and the probes per rank; one
                                   // all-reduce of the λ-gradient) or "global" (v averaged first:
                                   // exactly one large batch, one more θ-sized all-reduce)
  long k = 5;                   // neumann: series terms; cg: iterations; unrolled: base steps reversed
  double neumann_alpha = 0.01;  // neumann: step α of Σ (I − αH)^j (converges for α < 2/λ_max(H))
  double cg_damping = 0.1;      // cg (and the cg reference): μ of (H + μI) w = v
  std::string hvp = "exact";    // Hessian-vector products: "exact" (R-operator) or "finite_difference"
  double hvp_radius = 1e-3;     // hvp = "finite_difference": ‖εu‖ of (∇L(θ+εu) − ∇L(θ−εu)) / 2ε
  long diagnose_every = 0;      // every N meta steps also compute a reference λ-gradient (0 = never)
  std::string diagnose_reference = "cg";  // "cg" or "unrolled", with ...
  long diagnose_k = 20;                   // ... this many iterations / unrolled steps
};

/// Per-sample scores written to scores.h5 (data pruning, noise detection). Epoch windows are
/// [first, last) in zero-based epochs of this run; {-1, -1} means the default given per key.
struct ScoresConfig {
  bool enabled = true;
  std::vector<long> early_epochs = {-1, -1};       // EL2N and GraNd: default epochs [1, 5)
  std::vector<long> meta_weight_epochs = {-1, -1}; // meta_weight (the pruning score): default early_epochs' window
  std::vector<long> detection_epochs = {-1, -1};   // meta_log_weight, meta_weight_envelope: default the whole run
};

struct ParallelConfig {
  std::string backend = "mpi";  // gradient all-reduce: "mpi" (host buffers) or "nccl" (GPU buffers)
  double bucket_mb = 25.0;      // gradient all-reduce bucket size (MB); <= 0: one bucket per layer
  long check_replicas = 0;      // every N steps verify θ and λ are identical on all ranks (0 = never)
  bool gpu_aware_mpi = false;   // backend "mpi" on a device build: hand device buffers to MPI (needs a
                                // CUDA-aware MPI) instead of staging them through host memory
};

struct CheckpointConfig {
  long every_steps = 0;         // write a checkpoint every N steps (0 = by steps never)
  double every_minutes = 0;     // ... and/or every M minutes of wall time (0 = never)
  long keep = 2;                // newest checkpoints kept (the previous good one survives a bad write)
  double wall_time_minutes = 0; // budget: checkpoint and exit with code 75 ("requeue me") when spent
};

struct DebugConfig {
  long fail_step = -1;          // inject a failure at this step ... (tests of the error path)
  long fail_rank = -1;          // ... on this rank (-1 = none)
  long nan_step = -1;           // make the loss non-finite at this step ...
  long nan_rank = -1;           // ... on this rank
  long nan_count = 1;           // ... for this many consecutive steps
  long preempt_step = -1;       // behave as if SIGUSR1 arrived during this step
};

struct Deck {
  std::string file;  // where it was read from
  DataConfig data;
  ModelConfig model;
  OptimizerDeck optimizer;
  optim::ScheduleConfig schedule;
  TrainConfig train;
  MetaConfig meta;
  ScoresConfig scores;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  DebugConfig debug;
  std::vector<std::string> notes;  // said on the run header: an empty deck, a repeated --set key
};

/// Reads and validates a deck; overrides are "section.key=value" (value in TOML syntax, or a bare
/// string). Any problem throws sama::Error naming the file, the key and its line.
Deck load_deck(const std::string& path, const std::vector<std::string>& overrides = {});
/// The same from TOML text (`name` is used in messages).
Deck parse_deck(const std::string& text, const std::string& name, const std::vector<std::string>& overrides = {});
/// The resolved deck (every key, defaults filled) as TOML text.
std::string to_toml(const Deck& deck);
/// Why a checkpoint written under deck `saved` cannot continue under `current` ("" if it can): any
/// difference outside [checkpoint], [debug], [parallel] and the logging intervals.
std::string resume_incompatibility(const std::string& saved_toml, const Deck& current);

}  // namespace sama::app
