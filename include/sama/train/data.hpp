#pragma once
// The run's data: training and test sets, the meta split, the noisy labels, the normalisation and the
// ids trained on (a keep mask's); and the memory check made before anything large is allocated.
// Host-only (no Kokkos): the device batch is in batch.hpp.
#include "sama/app/deck.hpp"
#include "sama/comm/communicator.hpp"
#include "sama/data/dataset.hpp"
#include "sama/data/noise.hpp"

#include <cstdint>
#include <iosfwd>
#include <vector>

namespace sama::training {

struct Data {
  data::Dataset train, test;
  data::MetaSplit split;
  std::vector<std::int64_t> kept;  // the training ids sampled from: split.train_ids, or those a keep mask keeps
  data::NoisyLabels labels;
  data::Normalization norm;
};

/// The data's seed (meta split, label noise, synthetic samples): data.seed, or train.seed when 0.
long data_seed(const app::Deck& deck);

/// Reads (or makes) the deck's data and checks it; throws sama::Error naming the file on any problem.
Data load_data(const app::Deck& deck);

/// What the model will need, known before anything is allocated (model_adapter's model_footprint).
struct ModelFootprint {
  double params = 0, buffers = 0;
  double workspace_bytes = 0;  // the network's arena with forward mode, for the largest batch
};

/// Estimates the run's peak memory per rank before anything large is allocated, prints it, and
/// refuses a run that does not fit in the memory available to the rank (that of the node shared by
/// the ranks on it). SAMA_MEMORY_AVAILABLE_MB overrides the available memory (tests). `widths`: an
/// MLP's layer widths (model_widths), estimated layer by layer; otherwise (empty) the footprint's
/// parameters and planned arena; ranks_per_node 0: ask MPI; log: rank 0's progress stream.
/// Returns the estimate in MB.
double check_memory(const app::Deck& deck, const Data& data, const std::vector<std::size_t>& widths,
                    const ModelFootprint& footprint, int ranks_per_node, std::ostream* log,
                    const comm::Communicator& comm);

}  // namespace sama::training
