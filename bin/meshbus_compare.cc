// meshbus-compare: what `make compare` runs (issue #6). meshbus and its peers
// on the same shapes of work, in one run, on this machine: raw libzmq (the
// transport's limit, bin/compare_zmq.cc), a 3-server NATS cluster
// (bin/compare_nats.cc), and Erlang/OTP pg on 3 nodes (bin/compare_pg.cc)
// for groups, broadcast and failure detection. Each part runs kRuns times;
// every row gives the median with the spread, the peer's figure, the ratio
// and which is better, then each of issue 6's goals is judged on them
// (bin/compare_report.h). The rows also go to a CSV file (argv[1], default
// compare.csv) for scripts/compare.sh's chart. Every process it starts is
// stopped by its pid, and every run is bounded in count and time.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bin/bench_groups.h"
#include "bin/bench_messaging.h"
#include "bin/compare_nats.h"
#include "bin/compare_pg.h"
#include "bin/compare_report.h"
#include "bin/compare_zmq.h"
#include "test/process_mesh.h"

namespace {

using meshbus::bench::MessagingFigure;
using meshbus::bench::MessagingPart;
using meshbus::compare::Row;

constexpr int kRuns = 3;

double Figure(const std::vector<MessagingFigure>& figures, const std::string& metric, bool raw) {
  for (const MessagingFigure& f : figures) {
    if (f.metric == metric) return raw ? f.raw : f.meshbus;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const std::string csv_path = argc > 1 ? argv[1] : "compare.csv";
  // Every figure below goes to its row, in this order.
  std::vector<Row> rows = meshbus::compare::CompareRows();
  const std::string beam_dir = [&] {
    size_t slash = csv_path.rfind('/');
    return slash == std::string::npos ? std::string(".") : csv_path.substr(0, slash);
  }();
  std::vector<std::string> notes;
  for (int run = 0; run < kRuns; ++run) {
    std::printf("\n==== run %d of %d: meshbus and raw libzmq ====\n", run + 1, kRuns);
    std::fflush(stdout);
    std::vector<MessagingFigure> m =
        meshbus::bench::MessagingBenchmarks({MessagingPart::kPubSub, MessagingPart::kBroadcast,
                                             MessagingPart::kDispatch, MessagingPart::kRequest});
    std::printf("\n==== run %d of %d: meshbus groups and failure detection ====\n", run + 1, kRuns);
    std::fflush(stdout);
    meshbus::bench::JoinLatencyFigures join;
    double joins = 0, join_many = 0;
    {
      std::unique_ptr<meshbus::testing::ProcessMesh> mesh = meshbus::bench::MustUp(3);
      join = meshbus::bench::JoinLatency(*mesh, 2000);
      joins = meshbus::bench::JoinThroughput(*mesh, 10000, 1000, 1);
      join_many = meshbus::bench::JoinThroughput(*mesh, 10000, 1000, 100);
    }
    meshbus::bench::FailureFigures failure = meshbus::bench::FailureDetection(3);
    std::printf("\n==== run %d of %d: Erlang pg ====\n", run + 1, kRuns);
    std::fflush(stdout);
    std::string pg_error;
    std::optional<meshbus::compare::PgFigures> pg =
        meshbus::compare::MeasurePg(meshbus::testing::ScriptsDir(), beam_dir, &pg_error);
    if (!pg) {  // once more, with a new epmd port: a node that did not meet its peers
      std::printf("pg: %s; trying once more\n", pg_error.c_str());
      pg = meshbus::compare::MeasurePg(meshbus::testing::ScriptsDir(), beam_dir, &pg_error);
    }
    if (!pg) notes.push_back("run " + std::to_string(run + 1) + ": pg not measured: " + pg_error);
    if (pg) {
      std::printf(
          "pg: join p50 %.0f us p99 %.0f us, %.0f joins/s, broadcast %.0f deliveries/s, "
          "kill -9 %.1f ms, SIGSTOP %.0f ms\n",
          pg->join_p50_us, pg->join_p99_us, pg->joins_per_s, pg->broadcast_per_s, pg->kill_ms,
          pg->stop_ms);
    }
    std::printf("\n==== run %d of %d: raw libzmq chains and forwarder ====\n", run + 1, kRuns);
    using meshbus::compare::IoThreads;
    using meshbus::compare::MeasureChain;
    meshbus::compare::ChainFigures chains[3] = {MeasureChain(1), MeasureChain(2), MeasureChain(3)};
    meshbus::compare::ChainFigures shared_chain = MeasureChain(3, IoThreads::kShared);
    unsigned long long forwarder_lost = 0;
    double forwarder = meshbus::compare::MeasureForwarder(&forwarder_lost);
    meshbus::compare::JoinPathFigures join_path = meshbus::compare::MeasureJoinPath();
    std::printf(
        "raw libzmq: round trip p50 1 hop %.0f us, 2 hops %.0f us, 3 hops %.0f us (one I/O "
        "thread for all: %.0f us); PUB -> forwarder -> SUB 64 B %.0f msgs/s (%llu lost); a join's "
        "path: p50 %.0f us, %.0f calls/s\n",
        chains[0].p50_us, chains[1].p50_us, chains[2].p50_us, shared_chain.p50_us, forwarder,
        forwarder_lost, join_path.p50_us, join_path.per_s);
    std::printf("\n==== run %d of %d: NATS ====\n", run + 1, kRuns);
    std::fflush(stdout);
    std::string error;
    std::optional<meshbus::compare::NatsFigures> n = meshbus::compare::MeasureNats(&error);
    if (!n) {  // once more, on other ports: a port taken or a slow start
      std::printf("NATS: %s; trying once more\n", error.c_str());
      n = meshbus::compare::MeasureNats(&error);
    }
    if (!n) notes.push_back("run " + std::to_string(run + 1) + ": NATS not measured: " + error);
    auto mesh = [&](const std::string& metric) { return Figure(m, metric, false); };
    auto raw = [&](const std::string& metric) { return Figure(m, metric, true); };
    const std::string p64 = "publish n1 -> n3, 64 B, no loss",
                      p1k = "publish n1 -> n3, 1 KiB, no loss",
                      dispatch = meshbus::bench::DispatchMetric(),
                      dispatch_many = meshbus::bench::DispatchManyMetric(),
                      req = "request/reply n1 -> n3, sequential";
    const std::string bcast = "broadcast n1 -> 3 members, 64 B (deliveries), no loss";
    const std::string p64_many = "publish n1 -> n3, 64 B, PublishMany of 64, no loss",
                      p1k_many = "publish n1 -> n3, 1 KiB, PublishMany of 64, no loss",
                      bcast_many =
                          "broadcast n1 -> 3 members, 64 B (deliveries), BroadcastMany of 64, "
                          "no loss";
    // (meshbus, peer), in the order of `rows`.
    const std::vector<std::pair<double, double>> figures = {
        {mesh(p64), raw(p64)},
        {mesh(p64), n ? n->pub_64 : -1},
        {mesh(p1k), raw(p1k)},
        {mesh(p1k), n ? n->pub_1k : -1},
        {mesh(p64_many), n ? n->pub_64 : -1},
        {mesh(p1k_many), n ? n->pub_1k : -1},
        {mesh(dispatch), raw(dispatch)},
        {mesh(dispatch), n ? n->queue : -1},
        {mesh(dispatch_many), n ? n->queue : -1},
        {mesh(req + ", p50"), raw(req + ", p50")},
        {mesh(req + ", p50"), n ? n->request_p50_us : -1},
        {mesh(req + ", p99"), raw(req + ", p99")},
        {mesh(req + ", p99"), n ? n->request_p99_us : -1},
        {mesh(req + ", p50"), chains[0].p50_us},
        {mesh(req + ", p50"), chains[1].p50_us},
        {mesh(req + ", p50"), chains[2].p50_us},
        {mesh(req + ", p50"), shared_chain.p50_us},
        {mesh(p64), forwarder},
        {join.p50_us, pg ? pg->join_p50_us : -1},
        {join.p50_us, join_path.p50_us},
        {joins, pg ? pg->joins_per_s : -1},
        {joins, join_path.per_s},
        {join_many, pg ? pg->joins_per_s : -1},
        {mesh(bcast), pg ? pg->broadcast_per_s : -1},
        {mesh(bcast_many), pg ? pg->broadcast_per_s : -1},
        {failure.kill_ms, pg ? pg->kill_ms : -1},
        {failure.stop_ms, pg ? pg->stop_ms : -1},
    };
    if (figures.size() != rows.size()) {
      std::fprintf(stderr, "meshbus-compare: %zu rows but %zu figures\n", rows.size(),
                   figures.size());
      return 1;
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      rows[i].meshbus.Add(figures[i].first);
      rows[i].other.Add(figures[i].second);
    }
    if (n) {
      std::printf(
          "NATS: publish 64 B %.0f/s (%llu of 200000 lost), 1 KiB %.0f/s (%llu lost), "
          "queue group %.0f/s (%llu lost), request p50 %.0f us p99 %.0f us\n",
          n->pub_64, static_cast<unsigned long long>(n->pub_64_lost), n->pub_1k,
          static_cast<unsigned long long>(n->pub_1k_lost), n->queue,
          static_cast<unsigned long long>(n->queue_lost), n->request_p50_us, n->request_p99_us);
      if (n->pub_64_lost + n->pub_1k_lost + n->queue_lost > 0) {
        notes.push_back("run " + std::to_string(run + 1) +
                        ": NATS lost messages at full speed (core NATS drops for slow "
                        "consumers, silently to the publisher); its rates count what arrived");
      }
    }
  }

  meshbus::compare::PrintTable(stdout, rows);
  meshbus::compare::PrintGoals(stdout, rows, meshbus::compare::IssueSixGoals());
  std::ofstream csv(csv_path);
  meshbus::compare::WriteCsv(csv, rows);
  notes.push_back(
      "shapes: meshbus publish is the highest paced rate with nothing lost (every loss would be "
      "reported by a gap notice), NATS's is full speed, counting what arrived; meshbus "
      "dispatch is acknowledged (its member's broker has handed it to the member's socket) "
      "with 2048 in flight (as many as the SDK's DispatchMany keeps), one per call or as "
      "DispatchMany with 32 requests of 64 in flight; a NATS queue "
      "group is fire-and-forget; request/reply is sequential, 64 B, through two brokers (meshbus) "
      "or two servers (NATS)");
  notes.push_back(
      "raw libzmq rows: the messaging bench's own (PUB/SUB pair; DEALER/ROUTER dispatch; its "
      "3-hop chain is hand-written loops like a broker's); zmq_proxy chains of 1-3 hops with a "
      "context (an I/O thread) per node, as processes have, and the 3-hop one again with one "
      "I/O thread for all; an XSUB/XPUB forwarder; and a join's path through three poll loops "
      "(bin/compare_zmq.h)");
  for (const std::string& n : notes) std::printf("note: %s\n", n.c_str());
  std::printf("csv: %s\n", csv_path.c_str());
  return 0;
}
