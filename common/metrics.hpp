#pragma once
// Every figure on /metrics, in one registry. Each module registers its own counters (names and help
// text live beside the counters they read); the API renders the registry in the Prometheus text
// format. Single-threaded: register, observe and render on the event loop.
//
//   registry.counter("berth_dns_answered_total", "Upstream answers passed to the guest.",
//                    [this] { return counters_.answered; });
//   auto& lag = registry.histogram("berth_loop_lag_seconds", "...", {0.001, 0.01, 0.1});
//   lag.observe(0.002);
//   std::string text = registry.render();

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth {

// Label pairs of one sample, e.g. {{"device", "disk0"}}. Values are escaped when rendered.
using Labels = std::vector<std::pair<std::string, std::string>>;

struct Sample {
  Labels labels;
  double value = 0;
};

enum class MetricType { kCounter, kGauge };

// Counts of observations per upper bound (Prometheus `le`), plus their sum and count.
class Histogram {
 public:
  // `bounds`: the buckets' upper bounds (sorted here, duplicates dropped); +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per bucket, not cumulative; one more than bounds() (the last is +Inf).
  const std::vector<std::uint64_t>& bucket_counts() const { return counts_; }
  double sum() const { return sum_; }
  std::uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

class MetricsRegistry {
 public:
  using Read = std::function<double()>;
  using ReadSamples = std::function<std::vector<Sample>()>;

  // One value read at render time. Registering a name again replaces it (a module restarted).
  void counter(std::string name, std::string help, Read read);
  void gauge(std::string name, std::string help, Read read);
  // A family of labelled samples read at render time (no sample: the family is left out).
  void family(MetricType type, std::string name, std::string help, ReadSamples read);
  // A histogram owned by the registry; the reference stays valid as long as the registry.
  Histogram& histogram(std::string name, std::string help, std::vector<double> bounds);
  // Forgets the metric `name` (its module is gone).
  void remove(std::string_view name);

  // The text exposition format (version 0.0.4), in registration order.
  std::string render() const;
  // The names registered, in order (for tests and docs).
  std::vector<std::string> names() const;

 private:
  struct Entry {
    std::string name;
    std::string help;
    MetricType type = MetricType::kGauge;
    ReadSamples read;                      // counters, gauges and families
    std::unique_ptr<Histogram> histogram;  // or a histogram
  };
  Entry& slot(std::string name);
  std::vector<Entry> entries_;
};

// One counter of a module's counters struct: {name, help, &Counters::field}.
template <class Counters>
struct CounterField {
  const char* name;
  const char* help;
  std::uint64_t Counters::*field;
};

// Registers a counter per entry of `fields`, each reading `read().*field` at render time.
template <class Counters, std::size_t N, class Read>
void register_counter_fields(MetricsRegistry& registry, const CounterField<Counters> (&fields)[N],
                             Read read) {
  for (const auto& f : fields)
    registry.counter(f.name, f.help,
                     [read, field = f.field] { return static_cast<double>(read().*field); });
}

}  // namespace berth
