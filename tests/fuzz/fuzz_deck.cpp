// libFuzzer target: the input deck parser (sama::app::parse_deck) on arbitrary bytes.
//
// sama::Error is the expected way to refuse a deck. Anything else is a finding: a crash, a sanitizer
// report, another exception type escaping, or a deck that parses but whose resolved form (what
// `sama train` writes as deck.resolved.toml) does not parse back to the same resolved deck. The same
// bytes, split into lines, are also applied as --set overrides to an empty deck.
#include "fuzz_common.hpp"
#include "sama/app/deck.hpp"
#include "sama/core/error.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using sama::app::Deck;
  const std::string text(reinterpret_cast<const char*>(data), size);

  std::optional<Deck> deck;
  try {
    deck = sama::app::parse_deck(text, "fuzz.toml");
  } catch (const sama::Error&) {
  }
  if (deck) {
    const std::string resolved = sama::app::to_toml(*deck);
    try {
      const Deck again = sama::app::parse_deck(resolved, "fuzz.toml");
      if (sama::app::to_toml(again) != resolved)
        sama::fuzz::finding("the resolved deck parses to a different deck:\n" + resolved);
    } catch (const sama::Error& e) {
      sama::fuzz::finding(std::string("the resolved deck does not parse: ") + e.what() + "\n" + resolved);
    }
  }

  // Overrides: each line is one --set argument (at most 8 lines).
  std::vector<std::string> sets;
  std::size_t start = 0;
  while (start <= text.size() && sets.size() < 8) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    sets.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  try {
    (void)sama::app::parse_deck("[train]\nsteps = 1\n", "fuzz_set.toml", sets);
  } catch (const sama::Error&) {
  }
  return 0;
}
