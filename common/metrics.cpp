#include "common/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace berth {
namespace {

std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"')
      out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string format_labels(const Labels& labels) {
  if (labels.empty())
    return "";
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i)
    out += fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", labels[i].first,
                       escape_label(labels[i].second));
  return out + "}";
}

// Integers without a fraction ("42", not "42.000000"); others in the shortest exact form.
std::string format_value(double value) {
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value))
    return "NaN";
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    return fmt::format("{}", static_cast<long long>(value));
  return fmt::format("{}", value);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double value) {
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++counts_[static_cast<std::size_t>(at - bounds_.begin())];
  sum_ += value;
  ++count_;
}

MetricsRegistry::Entry& MetricsRegistry::slot(std::string name) {
  for (auto& entry : entries_) {
    if (entry.name == name) {
      entry = Entry{};
      entry.name = std::move(name);
      return entry;
    }
  }
  entries_.push_back(Entry{});
  entries_.back().name = std::move(name);
  return entries_.back();
}

void MetricsRegistry::counter(std::string name, std::string help, Read read) {
  family(MetricType::kCounter, std::move(name), std::move(help), [read = std::move(read)] {
    return std::vector<Sample>{{{}, read()}};
  });
}

void MetricsRegistry::gauge(std::string name, std::string help, Read read) {
  family(MetricType::kGauge, std::move(name), std::move(help), [read = std::move(read)] {
    return std::vector<Sample>{{{}, read()}};
  });
}

void MetricsRegistry::family(MetricType type, std::string name, std::string help,
                             ReadSamples read) {
  auto& entry = slot(std::move(name));
  entry.help = std::move(help);
  entry.type = type;
  entry.read = std::move(read);
}

Histogram& MetricsRegistry::histogram(std::string name, std::string help,
                                      std::vector<double> bounds) {
  auto& entry = slot(std::move(name));
  entry.help = std::move(help);
  entry.histogram = std::make_unique<Histogram>(std::move(bounds));
  return *entry.histogram;
}

void MetricsRegistry::remove(std::string_view name) {
  std::erase_if(entries_, [name](const Entry& entry) { return entry.name == name; });
}

std::vector<std::string> MetricsRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& entry : entries_)
    out.push_back(entry.name);
  return out;
}

std::string MetricsRegistry::render() const {
  std::string out;
  for (const auto& entry : entries_) {
    if (entry.histogram) {
      const Histogram& h = *entry.histogram;
      out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", entry.name, entry.help, entry.name);
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < h.bounds().size(); ++i) {
        cumulative += h.bucket_counts()[i];
        out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", entry.name, format_value(h.bounds()[i]),
                           cumulative);
      }
      out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", entry.name, h.count());
      out += fmt::format("{}_sum {}\n{}_count {}\n", entry.name, format_value(h.sum()), entry.name,
                         h.count());
      continue;
    }
    const auto samples = entry.read();
    if (samples.empty())
      continue;
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", entry.name, entry.help, entry.name,
                       entry.type == MetricType::kCounter ? "counter" : "gauge");
    for (const auto& sample : samples)
      out += fmt::format("{}{} {}\n", entry.name, format_labels(sample.labels),
                         format_value(sample.value));
  }
  return out;
}

}  // namespace berth
