// Shared by meshbus-bench's sections: clocks, percentiles, fatal errors, and
// the entry point of the messaging benchmarks (bench_messaging.cc).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "test/process_mesh.h"

namespace meshbus::bench {

using Clock = std::chrono::steady_clock;

inline double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

// "812 us", or "3.65 ms" from a millisecond up.
inline std::string TimeText(double us) {
  char buf[64];
  if (us < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f us", us);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f ms", us / 1000);
  }
  return buf;
}

[[noreturn]] inline void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "meshbus-bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

inline Client MustConnect(const testing::ProcessMesh& mesh, int i, const std::string& name) {
  Result<Client> c = mesh.Connect(i, name);
  if (!c.ok()) Die("connect to n" + std::to_string(i + 1), c.status());
  return std::move(c.value());
}

inline std::unique_ptr<testing::ProcessMesh> MustUp(int n) {
  auto m = testing::ProcessMesh::Up(n, {"--log-level", "warn"});
  if (!m.ok()) Die("mesh-up", m.status());
  return std::move(m.value());
}

// The parts of the messaging benchmark; each is measured on a 3-node mesh
// and, the same way, with raw libzmq sockets.
enum class MessagingPart { kPubSub, kBroadcast, kDispatch, kRequest };

// One row of the messaging table: a metric, meshbus's figure and raw
// libzmq's (-1 when not measured or failed). `rate`: higher is better; else
// a latency in µs or a CPU cost.
struct MessagingFigure {
  std::string metric;
  bool rate = true;
  double meshbus = -1, raw = -1;
};

// The metric names of the dispatch rows (one Dispatch per call, and
// DispatchMany), with how many are kept in flight.
const std::string& DispatchMetric();
const std::string& DispatchManyMetric();

// Runs the given parts on one 3-node mesh, each part's raw baseline just
// before it, prints their table and returns its rows.
std::vector<MessagingFigure> MessagingBenchmarks(const std::vector<MessagingPart>& parts);

}  // namespace meshbus::bench
