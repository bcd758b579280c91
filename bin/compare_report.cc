#include "bin/compare_report.h"

#include <algorithm>

namespace meshbus::compare {
namespace {

std::string WithSpread(const Spread& s, const std::string& unit) {
  if (s.values.empty()) return "-";
  return Num(s.Median(), unit) + " (" + Num(s.Min(), unit) + "-" + Num(s.Max(), unit) + ")";
}

std::string Ratio(double advantage) {
  if (advantage <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", advantage);
  return buf;
}

const Row* Find(const std::vector<Row>& rows, const std::string& label) {
  auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.label == label; });
  return it == rows.end() ? nullptr : &*it;
}

const char* VerdictText(Verdict v) {
  switch (v) {
    case Verdict::kMet:
      return "met";
    case Verdict::kBatchedOnly:
      return "batched";
    case Verdict::kNotMet:
      return "not met";
    case Verdict::kUnmeasured:
      break;
  }
  return "unmeasured";
}

}  // namespace

double Spread::Median() const {
  if (values.empty()) return -1;
  std::vector<double> v = values;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Spread::Min() const {
  return values.empty() ? -1 : *std::min_element(values.begin(), values.end());
}

double Spread::Max() const {
  return values.empty() ? -1 : *std::max_element(values.begin(), values.end());
}

double Advantage(const Row& r) {
  double m = r.meshbus.Median(), o = r.other.Median();
  if (m <= 0 || o <= 0) return -1;
  return r.higher_is_better ? m / o : o / m;
}

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

GoalResult Judge(const Goal& goal, const std::vector<Row>& rows) {
  GoalResult out;
  const Row* row = Find(rows, goal.label);
  if (row == nullptr) return out;
  out.advantage = Advantage(*row);
  if (out.advantage < 0) return out;
  if (goal.max_behind > 0) {
    const double behind = row->meshbus.Median() - row->other.Median();
    out.verdict = behind <= goal.max_behind ? Verdict::kMet : Verdict::kNotMet;
    return out;
  }
  if (const Row* b = goal.batched_label.empty() ? nullptr : Find(rows, goal.batched_label)) {
    out.batched = Advantage(*b);
  }
  out.verdict = out.advantage >= goal.at_least ? Verdict::kMet
                : out.batched >= goal.at_least ? Verdict::kBatchedOnly
                                               : Verdict::kNotMet;
  if (out.verdict == Verdict::kMet) return out;
  // The floor row sets meshbus against raw libzmq; its peer side is raw
  // libzmq's figure, to be set against the goal's peer.
  const Row* floor = goal.floor_label.empty() ? nullptr : Find(rows, goal.floor_label);
  if (floor != nullptr) {
    Row raw_against_peer = *row;
    raw_against_peer.meshbus = floor->other;
    out.floor_over_peer = Advantage(raw_against_peer);
    out.out_of_reach = out.floor_over_peer > 0 && out.floor_over_peer < goal.at_least;
  }
  return out;
}

std::vector<Row> CompareRows() {
  return {
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
      {"request/reply across two brokers, p50 us", "the same chain, one I/O thread for all", "us",
       "req p50 / zmq 3 hops, 1 I/O thread", false},
      {"publish n1 -> subscriber on n3, 64 B, msgs/s", "raw libzmq PUB -> forwarder -> SUB",
       "msgs/s", "pub 64 B / zmq forwarder"},
      {"join on n1 visible on n2, p50 us", "Erlang pg, 3 nodes", "us", "join p50 / pg", false},
      {"join on n1 visible on n2, p50 us", "raw libzmq, the same path", "us", "join p50 / zmq",
       false},
      {"joins/s visible on n2, one join per call", "Erlang pg, 3 nodes", "msgs/s", "joins/s / pg"},
      {"joins/s visible on n2, one join per call", "raw libzmq, the same path", "msgs/s",
       "joins/s / zmq"},
      {"joins/s visible on n2, JoinMany of 100", "Erlang pg (one join per call)", "msgs/s",
       "JoinMany/s / pg"},
      {"broadcast to a group of 3, deliveries/s", "Erlang pg, 3 nodes", "msgs/s", "broadcast / pg"},
      {"the same, BroadcastMany of 64", "Erlang pg, 3 nodes", "msgs/s", "BroadcastMany / pg"},
      {"members gone after kill -9 of their node, ms", "Erlang pg, net_ticktime 2", "ms",
       "kill -9 / pg", false},
      {"members gone after SIGSTOP of their node, ms", "Erlang pg, net_ticktime 2", "ms",
       "SIGSTOP / pg", false},
  };
}

const std::vector<Goal>& IssueSixGoals() {
  static const std::vector<Goal> goals = {
      {"publish 64 B n1 -> n3: more msgs/s than the NATS cluster, no loss", "pub 64 B / NATS", 1, 0,
       "PublishMany 64 B / NATS", ""},
      {"publish 1 KiB n1 -> n3: more msgs/s than the NATS cluster, no loss", "pub 1 KiB / NATS", 1,
       0, "PublishMany 1 KiB / NATS", ""},
      {"dispatch to a group of 3: more msgs/s than a NATS queue group", "dispatch / NATS queue", 1,
       0, "DispatchMany / NATS queue", ""},
      {"request/reply p50 within 15 % of raw libzmq's 3-hop chain", "req p50 / zmq 3 hops",
       1 / 1.15, 0, "", ""},
      {"a join visible on another node at least as soon as with pg", "join p50 / pg", 1, 0, "",
       "join p50 / zmq"},
      {"joins/s at least pg's", "joins/s / pg", 1, 0, "JoinMany/s / pg", "joins/s / zmq"},
      {"broadcast deliveries/s at least 3x pg's", "broadcast / pg", 3, 0, "BroadcastMany / pg", ""},
      {"members gone after SIGSTOP sooner than with pg (net_ticktime 2)", "SIGSTOP / pg", 1, 0, "",
       ""},
      {"members gone after kill -9 at most 3 ms after pg's", "kill -9 / pg", 1, 3, "", ""},
  };
  return goals;
}

void PrintTable(std::FILE* out, const std::vector<Row>& rows) {
  std::fprintf(out, "\n%-46s %-36s %-24s %-24s %-8s %s\n", "shape", "peer",
               "meshbus (median, range)", "peer (median, range)", "ratio", "better");
  std::fprintf(out, "%s\n", std::string(140, '-').c_str());
  for (const Row& r : rows) {
    const double adv = Advantage(r);
    std::fprintf(out, "%-46s %-36s %-24s %-24s %-8s %s\n", r.shape.c_str(), r.peer.c_str(),
                 WithSpread(r.meshbus, r.unit).c_str(), WithSpread(r.other, r.unit).c_str(),
                 Ratio(adv).c_str(),
                 adv < 0    ? "-"
                 : adv >= 1 ? "meshbus"
                            : "peer");
  }
  std::fprintf(out,
               "ratio: meshbus's advantage (its rate over the peer's, or the peer's latency over "
               "its own); under 1 the peer is better\n");
}

void PrintGoals(std::FILE* out, const std::vector<Row>& rows, const std::vector<Goal>& goals) {
  std::fprintf(out, "\ngoals of issue 6, on the medians above:\n");
  for (const Goal& g : goals) {
    const GoalResult r = Judge(g, rows);
    const Row* row = Find(rows, g.label);
    std::string figures = Ratio(r.advantage);
    if (row != nullptr && r.verdict != Verdict::kUnmeasured) {
      figures += " (" + Num(row->meshbus.Median(), row->unit) + " against " +
                 Num(row->other.Median(), row->unit) + " " + row->unit + ")";
    }
    if (r.batched > 0) figures += "; with many per call " + Ratio(r.batched);
    std::fprintf(out, "  %-10s %s: %s\n", VerdictText(r.verdict), g.text.c_str(), figures.c_str());
    if (r.out_of_reach) {
      const Row* floor = Find(rows, g.floor_label);
      std::fprintf(out,
                   "  %-10s out of libzmq's reach here: raw libzmq on the same path %s %s, %s "
                   "the peer's; meshbus %s raw libzmq's\n",
                   "", Num(floor->other.Median(), row->unit).c_str(), row->unit.c_str(),
                   Ratio(r.floor_over_peer).c_str(), Ratio(Advantage(*floor)).c_str());
    }
  }
  std::fprintf(out,
               "  (batched: met with PublishMany, DispatchMany, JoinMany or BroadcastMany, many "
               "per call, but not with one per call)\n");
}

void WriteCsv(std::ostream& out, const std::vector<Row>& rows) {
  out << "label,shape,peer,unit,meshbus_median,meshbus_min,meshbus_max,peer_median,peer_min,"
         "peer_max,meshbus_advantage\n";
  for (const Row& r : rows) {
    out << '"' << r.label << "\",\"" << r.shape << "\",\"" << r.peer << "\"," << r.unit << ','
        << r.meshbus.Median() << ',' << r.meshbus.Min() << ',' << r.meshbus.Max() << ','
        << r.other.Median() << ',' << r.other.Min() << ',' << r.other.Max() << ',' << Advantage(r)
        << '\n';
  }
}

}  // namespace meshbus::compare
