// The report of `make compare` (issue #6): each row's figures from several
// runs (median and spread, meshbus's and the peer's), meshbus's advantage,
// the CSV for the chart, and the verdict on each of issue 6's goals. Pure:
// no sockets, no processes (test/compare_report_test.cc). Not thread-safe.
#pragma once

#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace meshbus::compare {

// One figure per run; a negative one (not measured) is left out.
struct Spread {
  std::vector<double> values;
  void Add(double v) {
    if (v >= 0) values.push_back(v);
  }
  double Median() const;  // -1 when empty
  double Min() const;
  double Max() const;
};

struct Row {
  std::string shape, peer, unit;
  std::string label;  // short and unique: the chart's, and how goals name the row
  bool higher_is_better = true;
  Spread meshbus = {}, other = {};
};

// meshbus's advantage on the medians: its rate over the peer's, or the
// peer's latency over its own, so that above 1 meshbus is better. -1 when
// either side was not measured.
double Advantage(const Row& r);

// "1.51 M", "387.3 k" for msgs/s, "4.1" for small ms, "364" otherwise;
// "-" for a figure not measured.
std::string Num(double v, const std::string& unit);

// A goal of issue 6, judged on the medians of the rows it names by label.
struct Goal {
  std::string text;
  std::string label;          // judged on this row: one message or join per call
  double at_least = 1;        // the advantage that meets it
  double max_behind = 0;      // when > 0: met if meshbus's median is at most this much
                              // above the peer's (in the row's unit), whatever the ratio
  std::string batched_label;  // the same shape with many per call ("": none)
  std::string floor_label;    // raw libzmq on the same path, against meshbus ("": none)
};

enum class Verdict {
  kUnmeasured,   // a side of the goal's row has no figure
  kMet,          // with one per call
  kBatchedOnly,  // met only with many per call
  kNotMet,
};

struct GoalResult {
  Verdict verdict = Verdict::kUnmeasured;
  double advantage = -1, batched = -1;
  // When not met and a floor is named: raw libzmq's own advantage over the
  // peer on the same path; under the goal's at_least, no design carried by
  // libzmq on this machine could meet it.
  double floor_over_peer = -1;
  bool out_of_reach = false;
};

// Unmeasured when a label names no row.
GoalResult Judge(const Goal& goal, const std::vector<Row>& rows);

// The rows of `make compare`, with no figures yet; meshbus_compare.cc fills
// them in this order.
std::vector<Row> CompareRows();

// Issue 6's goals, in the issue's words, over CompareRows().
const std::vector<Goal>& IssueSixGoals();

void PrintTable(std::FILE* out, const std::vector<Row>& rows);
void PrintGoals(std::FILE* out, const std::vector<Row>& rows, const std::vector<Goal>& goals);
void WriteCsv(std::ostream& out, const std::vector<Row>& rows);

}  // namespace meshbus::compare
