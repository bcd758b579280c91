// Tests of bin/compare_report.h: medians over runs, meshbus's advantage
// either way round, and the verdict on a goal (met, met only batched, not
// met, unmeasured, out of libzmq's reach, or judged on a difference).

#include "bin/compare_report.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace meshbus::compare {
namespace {

Row R(const std::string& label, std::vector<double> meshbus, std::vector<double> peer,
      bool higher_is_better = true) {
  Row r{"shape", "peer", higher_is_better ? "msgs/s" : "us", label, higher_is_better};
  for (double v : meshbus) r.meshbus.Add(v);
  for (double v : peer) r.other.Add(v);
  return r;
}

TEST(CompareReportTest, MedianLeavesOutWhatWasNotMeasured) {
  Spread s;
  EXPECT_EQ(s.Median(), -1);
  for (double v : {5.0, -1.0, 1.0, 3.0}) s.Add(v);
  EXPECT_EQ(s.values.size(), 3u);
  EXPECT_EQ(s.Median(), 3);
  EXPECT_EQ(s.Min(), 1);
  EXPECT_EQ(s.Max(), 5);
}

TEST(CompareReportTest, AdvantageIsAboveOneWhereMeshbusIsBetter) {
  EXPECT_DOUBLE_EQ(Advantage(R("rate", {200}, {100})), 2);
  EXPECT_DOUBLE_EQ(Advantage(R("latency", {200}, {100}, false)), 0.5);
  EXPECT_EQ(Advantage(R("no peer", {200}, {})), -1);
  EXPECT_EQ(Advantage(R("no meshbus", {}, {100})), -1);
}

TEST(CompareReportTest, GoalsAreJudgedOnTheirRows) {
  const std::vector<Row> rows = {
      R("one", {90, 120, 130}, {100, 100, 110}),  // medians 120 / 100
      R("one slow", {60}, {100}),
      R("many", {250}, {100}),
      R("many slow", {95}, {100}),
      R("latency", {360}, {327}, false),
      R("latency slow", {400}, {327}, false),
      R("unmeasured", {100}, {}),
      R("join / pg", {237}, {56}, false),
      R("join / zmq", {237}, {203}, false),
      R("join / fast zmq", {237}, {40}, false),
      R("kill", {4.1}, {3.6}, false),
      R("kill slow", {8}, {3.6}, false),
  };
  struct Case {
    const char* what;
    Goal goal;
    Verdict verdict;
    double advantage, batched;
    bool out_of_reach;
  };
  const std::vector<Case> cases = {
      {"met with one per call", {"", "one", 1, 0, "many", ""}, Verdict::kMet, 1.2, 2.5, false},
      {"met only batched",
       {"", "one slow", 1, 0, "many", ""},
       Verdict::kBatchedOnly,
       0.6,
       2.5,
       false},
      {"not met either way",
       {"", "one slow", 1, 0, "many slow", ""},
       Verdict::kNotMet,
       0.6,
       0.95,
       false},
      {"a ratio other than 1", {"", "one", 1.5, 0, "", ""}, Verdict::kNotMet, 1.2, -1, false},
      {"latency within 15 %",
       {"", "latency", 1 / 1.15, 0, "", ""},
       Verdict::kMet,
       327.0 / 360,
       -1,
       false},
      {"latency beyond 15 %",
       {"", "latency slow", 1 / 1.15, 0, "", ""},
       Verdict::kNotMet,
       327.0 / 400,
       -1,
       false},
      {"a row without the peer's figure",
       {"", "unmeasured", 1, 0, "", ""},
       Verdict::kUnmeasured,
       -1,
       -1,
       false},
      {"a label naming no row", {"", "nowhere", 1, 0, "", ""}, Verdict::kUnmeasured, -1, -1, false},
      {"raw libzmq slower than the peer",
       {"", "join / pg", 1, 0, "", "join / zmq"},
       Verdict::kNotMet,
       56.0 / 237,
       -1,
       true},
      {"raw libzmq faster than the peer",
       {"", "join / pg", 1, 0, "", "join / fast zmq"},
       Verdict::kNotMet,
       56.0 / 237,
       -1,
       false},
      {"a few ms behind", {"", "kill", 1, 3, "", ""}, Verdict::kMet, 3.6 / 4.1, -1, false},
      {"more than a few ms behind",
       {"", "kill slow", 1, 3, "", ""},
       Verdict::kNotMet,
       3.6 / 8,
       -1,
       false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const GoalResult r = Judge(c.goal, rows);
    EXPECT_EQ(r.verdict, c.verdict);
    EXPECT_NEAR(r.advantage, c.advantage, 1e-9);
    EXPECT_NEAR(r.batched, c.batched, 1e-9);
    EXPECT_EQ(r.out_of_reach, c.out_of_reach);
  }
  const GoalResult floor = Judge({"", "join / pg", 1, 0, "", "join / zmq"}, rows);
  EXPECT_NEAR(floor.floor_over_peer, 56.0 / 203, 1e-9);
}

TEST(CompareReportTest, EveryGoalNamesRowsOfTheReport) {
  const std::vector<Row> rows = CompareRows();
  std::set<std::string> labels;
  for (const Row& r : rows) EXPECT_TRUE(labels.insert(r.label).second) << r.label;
  for (const Goal& g : IssueSixGoals()) {
    EXPECT_TRUE(labels.count(g.label)) << g.label;
    if (!g.batched_label.empty()) {
      EXPECT_TRUE(labels.count(g.batched_label)) << g.batched_label;
    }
    if (!g.floor_label.empty()) {
      EXPECT_TRUE(labels.count(g.floor_label)) << g.floor_label;
    }
  }
}

TEST(CompareReportTest, CsvHasARowPerRowWithItsAdvantage) {
  std::ostringstream csv;
  WriteCsv(csv, {R("a", {200}, {100}), R("b", {}, {100})});
  EXPECT_EQ(csv.str(),
            "label,shape,peer,unit,meshbus_median,meshbus_min,meshbus_max,peer_median,peer_min,"
            "peer_max,meshbus_advantage\n"
            "\"a\",\"shape\",\"peer\",msgs/s,200,200,200,100,100,100,2\n"
            "\"b\",\"shape\",\"peer\",msgs/s,-1,-1,-1,100,100,100,-1\n");
}

}  // namespace
}  // namespace meshbus::compare
