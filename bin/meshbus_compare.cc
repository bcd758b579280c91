// meshbus-compare: what `make compare` runs (issue #6). meshbus and its peers
// on the same shapes of work, in one run, on this machine: raw libzmq (the
// transport's limit) and a 3-server NATS cluster (bin/compare_nats.cc); each
// part RUNS times (3 by default), and every row gives the median with the
// spread, the peer's figure, the ratio and which is better. The rows also go
// to a CSV file (argv[1], default compare.csv) for scripts/compare.sh's chart;
// Erlang/OTP pg on 3 nodes (bin/compare_pg.cc) for groups, broadcast and
// failure detection. Every process it starts is stopped by its pid, and
// every run is bounded in count and time.
#include <signal.h>

#include <algorithm>
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
#include "bin/compare_zmq.h"
#include "test/process_mesh.h"

namespace {

using meshbus::bench::MessagingFigure;
using meshbus::bench::MessagingPart;

constexpr int kRuns = 3;

struct Spread {
  std::vector<double> values;
  void Add(double v) {
    if (v >= 0) values.push_back(v);
  }
  double Median() const {
    if (values.empty()) return -1;
    std::vector<double> v = values;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  double Min() const {
    return values.empty() ? -1 : *std::min_element(values.begin(), values.end());
  }
  double Max() const {
    return values.empty() ? -1 : *std::max_element(values.begin(), values.end());
  }
};

struct Row {
  std::string shape, peer, unit, label;  // label: the chart's, short
  bool higher_is_better = true;
  Spread meshbus, other;
};

std::string Num(double v, const std::string& unit) {
  char buf[64];
  if (v < 0) return "-";
  if (unit == "msgs/s") {
    if (v >= 1e6) {
      std::snprintf(buf, sizeof buf, "%.2f M", v / 1e6);
    } else if (v >= 1e3) {
      std::snprintf(buf, sizeof buf, "%.1f k", v / 1e3);
    } else {
      std::snprintf(buf, sizeof buf, "%.0f", v);
    }
  } else if (unit == "ms" && v < 100) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

std::string WithSpread(const Spread& s, const std::string& unit) {
  if (s.values.empty()) return "-";
  return Num(s.Median(), unit) + " (" + Num(s.Min(), unit) + "-" + Num(s.Max(), unit) + ")";
}

// meshbus's figure over the peer's, so that > 1 means meshbus is better.
double Advantage(const Row& r) {
  double m = r.meshbus.Median(), o = r.other.Median();
  if (m <= 0 || o <= 0) return -1;
  return r.higher_is_better ? m / o : o / m;
}

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
  std::vector<Row> rows = {
      {"publish n1 -> subscriber on n3, 64 B, msgs/s", "raw libzmq PUB/SUB", "msgs/s",
       "pub 64 B / zmq"},
      {"publish n1 -> subscriber on n3, 64 B, msgs/s", "NATS cluster A -> C", "msgs/s",
       "pub 64 B / NATS"},
      {"publish n1 -> subscriber on n3, 1 KiB, msgs/s", "raw libzmq PUB/SUB", "msgs/s",
       "pub 1 KiB / zmq"},
      {"publish n1 -> subscriber on n3, 1 KiB, msgs/s", "NATS cluster A -> C", "msgs/s",
       "pub 1 KiB / NATS"},
      {"the same, 64 B, PublishMany of 64", "NATS cluster A -> C", "msgs/s",
       "PublishMany 64 B / NATS"},
      {"the same, 1 KiB, PublishMany of 64", "NATS cluster A -> C", "msgs/s",
       "PublishMany 1 KiB / NATS"},
      {"dispatch to a group of 3, 2048 in flight, msgs/s", "raw libzmq DEALER/ROUTER", "msgs/s",
       "dispatch / zmq"},
      {"dispatch to a group of 3, 2048 in flight, msgs/s", "NATS queue group of 3 on C", "msgs/s",
       "dispatch / NATS queue"},
      {"the same, DispatchMany of 64, 32 in flight", "NATS queue group of 3 on C", "msgs/s",
       "DispatchMany / NATS queue"},
      {"request/reply across two brokers, p50 us", "raw libzmq 3 hops, broker-like loops", "us",
       "req p50 / zmq", false},
      {"request/reply across two brokers, p50 us", "NATS A -> responder on C", "us",
       "req p50 / NATS", false},
      {"request/reply across two brokers, p99 us", "raw libzmq 3 hops, broker-like loops", "us",
       "req p99 / zmq", false},
      {"request/reply across two brokers, p99 us", "NATS A -> responder on C", "us",
       "req p99 / NATS", false},
      {"request/reply across two brokers, p50 us", "raw libzmq 1-hop DEALER/ROUTER", "us",
       "req p50 / zmq 1 hop", false},
      {"request/reply across two brokers, p50 us", "raw libzmq 2-hop chain (1 proxy)", "us",
       "req p50 / zmq 2 hops", false},
      {"request/reply across two brokers, p50 us", "raw libzmq 3-hop chain (2 proxies)", "us",
       "req p50 / zmq 3 hops", false},
      {"publish n1 -> subscriber on n3, 64 B, msgs/s", "raw libzmq PUB -> forwarder -> SUB",
       "msgs/s", "pub 64 B / zmq forwarder"},
      {"join on n1 visible on n2, p50 us", "Erlang pg, 3 nodes", "us", "join p50 / pg", false},
      {"joins/s visible on n2, one join per call", "Erlang pg, 3 nodes", "msgs/s", "joins/s / pg"},
      {"joins/s visible on n2, JoinMany of 100", "Erlang pg (one join per call)", "msgs/s",
       "JoinMany/s / pg"},
      {"broadcast to a group of 3, deliveries/s", "Erlang pg, 3 nodes", "msgs/s", "broadcast / pg"},
      {"the same, BroadcastMany of 64", "Erlang pg, 3 nodes", "msgs/s", "BroadcastMany / pg"},
      {"members gone after kill -9 of their node, ms", "Erlang pg, net_ticktime 2", "ms",
       "kill -9 / pg", false},
      {"members gone after SIGSTOP of their node, ms", "Erlang pg, net_ticktime 2", "ms",
       "SIGSTOP / pg", false},
  };
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
    meshbus::compare::ChainFigures chains[3] = {meshbus::compare::MeasureChain(1),
                                                meshbus::compare::MeasureChain(2),
                                                meshbus::compare::MeasureChain(3)};
    unsigned long long forwarder_lost = 0;
    double forwarder = meshbus::compare::MeasureForwarder(&forwarder_lost);
    std::printf(
        "raw libzmq: round trip p50 1 hop %.0f us, 2 hops %.0f us, 3 hops %.0f us; "
        "PUB -> forwarder -> SUB 64 B %.0f msgs/s (%llu lost)\n",
        chains[0].p50_us, chains[1].p50_us, chains[2].p50_us, forwarder, forwarder_lost);
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
        {mesh(p64), forwarder},
        {join.p50_us, pg ? pg->join_p50_us : -1},
        {joins, pg ? pg->joins_per_s : -1},
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

  std::printf("\n%-46s %-36s %-24s %-24s %-8s %s\n", "shape", "peer", "meshbus (median, range)",
              "peer (median, range)", "ratio", "better");
  std::printf("%s\n", std::string(140, '-').c_str());
  std::ofstream csv(csv_path);
  csv << "label,shape,peer,unit,meshbus_median,meshbus_min,meshbus_max,peer_median,peer_min,peer_"
         "max,"
         "meshbus_advantage\n";
  for (const Row& r : rows) {
    double adv = Advantage(r);
    char ratio[32] = "-";
    if (adv > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", adv);
    std::printf("%-46s %-36s %-24s %-24s %-8s %s\n", r.shape.c_str(), r.peer.c_str(),
                WithSpread(r.meshbus, r.unit).c_str(), WithSpread(r.other, r.unit).c_str(), ratio,
                adv < 0    ? "-"
                : adv >= 1 ? "meshbus"
                           : "peer");
    csv << '"' << r.label << "\",\"" << r.shape << "\",\"" << r.peer << "\"," << r.unit << ','
        << r.meshbus.Median() << ',' << r.meshbus.Min() << ',' << r.meshbus.Max() << ','
        << r.other.Median() << ',' << r.other.Min() << ',' << r.other.Max() << ',' << adv << '\n';
  }
  std::printf(
      "ratio: meshbus's advantage (its rate over the peer's, or the peer's latency over "
      "its own); under 1 the peer is better\n");
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
      "3-hop chain is hand-written loops like a broker's), and zmq_proxy chains of 1-3 hops "
      "and an XSUB/XPUB forwarder");
  for (const std::string& n : notes) std::printf("note: %s\n", n.c_str());
  std::printf("csv: %s\n", csv_path.c_str());
  return 0;
}
