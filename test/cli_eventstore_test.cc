// The CLI's event-store commands (announce-store, stores, store-info,
// subscriptions, store-leader, lead-store, emitters, trackers), run as real
// `meshbus` processes against a real 3-node mesh of meshbusd processes, all
// three of them voters. A store leader's process is killed with SIGKILL and
// another candidate's process takes over. Every process a test starts is
// stopped by its pid, with a bounded wait.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "test/cli_process.h"
#include "test/process_mesh.h"
#include "test/test_mesh.h"

namespace meshbus::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr int kExitError = 1;
constexpr int kExitRefused = 5;
// A session ends this long after its process dies without a goodbye
// (meshbusd's default session timeout, 1.5 s); the rest is slack for a
// loaded machine.
constexpr milliseconds kReleaseAfterKill{8000};

class CliEventStoreTest : public CliMeshTest {
 protected:
  CliResult Run(int node, std::vector<std::string> args) {
    CliProcess p;
    CliResult r;
    if (!p.Start(On(node, std::move(args)))) {
      r.err = std::string("cannot start meshbus: ") + strerror(errno);
      return r;
    }
    r.code = p.WaitExit(milliseconds(15000));
    r.out = p.out();
    r.err = p.err();
    return r;
  }
  // `ARGS... --json` on node i, parsed; null when it failed.
  Json RunJson(int node, std::vector<std::string> args) {
    args.push_back("--json");
    CliResult r = Run(node, std::move(args));
    if (r.code != 0) return Json();
    return Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }
  // Starts a long-running command and waits for the line it prints when ready.
  bool StartAndWait(CliProcess& p, int node, std::vector<std::string> args,
                    const std::string& ready) {
    if (!p.Start(On(node, std::move(args)))) return false;
    return p.WaitForOutLine(ready, milliseconds(15000)).has_value();
  }
  // The (store, node) pairs `stores --json` lists on node i.
  std::vector<std::pair<std::string, std::string>> Stores(int node,
                                                          std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"stores"};
    args.insert(args.end(), extra.begin(), extra.end());
    Json doc = RunJson(node, args);
    std::vector<std::pair<std::string, std::string>> out;
    if (!doc.is_array()) return {{"error", doc.dump()}};
    for (const Json& e : doc) out.emplace_back(e.value("store", ""), e.value("node", ""));
    return out;
  }
};

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST_F(CliEventStoreTest, AnnouncedStoresAreListedEverywhereUntilTheirProcessDies) {
  CliProcess a, b;
  ASSERT_TRUE(StartAndWait(a, 0,
                           {"announce-store", "cli-orders", "--mode", "cluster", "--data-dir",
                            "/var/lib/orders", "--option", "replicas=3"},
                           "announced cli-orders on n1"))
      << a.err();
  ASSERT_TRUE(StartAndWait(b, 1, {"announce-store", "cli-orders"}, "announced cli-orders on n2"))
      << b.err();
  EXPECT_TRUE(WaitFor(
      [&] {
        return Stores(2) == Pairs{{"cli-orders", "n1"}, {"cli-orders", "n2"}};
      },
      milliseconds(10000)));
  EXPECT_EQ(Stores(2, {"--node", "n2"}), (Pairs{{"cli-orders", "n2"}}));

  Json info = RunJson(2, {"store-info", "cli-orders"});
  ASSERT_TRUE(info.is_array()) << info.dump();
  ASSERT_EQ(info.size(), 2u);
  EXPECT_EQ(info[0]["mode"], "cluster");
  EXPECT_EQ(info[0]["data_dir"], "/var/lib/orders");
  EXPECT_EQ(info[0]["options"]["replicas"], "3");
  EXPECT_EQ(info[1]["mode"], "single");
  CliResult table = Run(2, {"store-info", "cli-orders"});
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("option replicas"), std::string::npos) << table.out;

  // Taken on the same node by another process; unknown and bad ids.
  CliResult again = Run(0, {"announce-store", "cli-orders", "--hold", "0"});
  EXPECT_EQ(again.code, kExitRefused) << again.err;
  EXPECT_NE(again.err.find("taken"), std::string::npos) << again.err;
  CliResult unknown = Run(2, {"store-info", "cli-nothing"});
  EXPECT_EQ(unknown.code, kExitError);
  EXPECT_NE(unknown.err.find("not_found"), std::string::npos) << unknown.err;
  for (std::vector<std::string> bad :
       std::vector<std::vector<std::string>>{{"store-info", "a:b"},
                                             {"announce-store", "x", "--mode", "triple"},
                                             {"announce-store", "x", "--option", "novalue"},
                                             {"emitters", "orders", "bad sub"},
                                             {"trackers", "orders", "a/b"},
                                             {"stores", "--node", "bad node"}}) {
    CliResult r = Run(2, bad);
    EXPECT_EQ(r.code, kExitError) << bad[0] << ": " << r.err;
    EXPECT_NE(r.err.find("invalid_argument"), std::string::npos) << r.err;
  }

  // The store of a killed process is retired once its session times out.
  ASSERT_EQ(kill(a.pid(), SIGKILL), 0);
  a.WaitExit(milliseconds(5000));
  EXPECT_TRUE(WaitFor([&] { return Stores(2) == Pairs{{"cli-orders", "n2"}}; }, kReleaseAfterKill));
  // A graceful stop retires at once.
  EXPECT_EQ(b.Stop(SIGTERM, milliseconds(5000)), 0);
  EXPECT_TRUE(WaitFor([&] { return Stores(2).empty(); }, milliseconds(5000)));
}

TEST_F(CliEventStoreTest, AKilledStoreLeadersProcessIsReplacedByAnotherCandidate) {
  CliProcess c1, c2;
  ASSERT_TRUE(StartAndWait(c1, 0, {"lead-store", "cli-ledger"}, "candidate for cli-ledger"));
  ASSERT_TRUE(StartAndWait(c2, 1, {"lead-store", "cli-ledger"}, "candidate for cli-ledger"));
  Json leader;
  ASSERT_TRUE(WaitFor(
      [&] {
        leader = RunJson(2, {"store-leader", "cli-ledger"});
        return leader.is_object() && leader["active"] == true;
      },
      milliseconds(10000)))
      << leader.dump();
  const std::string first = leader["node"];
  CliProcess& active = first == "n1" ? c1 : c2;
  CliProcess& standby = first == "n1" ? c2 : c1;
  EXPECT_TRUE(active.WaitForOutLine("active, pools: $all=1", milliseconds(5000)).has_value())
      << active.out();

  Json subs = RunJson(2, {"subscriptions", "cli-ledger"});
  ASSERT_TRUE(subs.is_array()) << subs.dump();
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0]["id"], "$all");
  EXPECT_EQ(subs[0]["name"], "all-events");
  // True once `emitters` lists one emitter of $all, on `node`.
  Json emitters;
  auto one_emitter_on = [&](const std::string& node) {
    emitters = RunJson(2, {"emitters", "cli-ledger", "$all"});
    return emitters.is_object() && emitters["members"].size() == 1 &&
           emitters["members"][0].get<std::string>().rfind(node + ".", 0) == 0;
  };
  EXPECT_TRUE(WaitFor([&] { return one_emitter_on(first); }, milliseconds(5000)))
      << emitters.dump();
  EXPECT_EQ(emitters["persisted_names"], Json::array({"cli-ledger_$all_emitter"}));
  Json trackers = RunJson(2, {"trackers", "cli-ledger", "subscriptions"});
  ASSERT_TRUE(trackers.is_object());
  EXPECT_EQ(trackers["members"].size(), 2u);  // both candidates follow the subscriptions

  Clock::time_point killed = Clock::now();
  ASSERT_EQ(kill(active.pid(), SIGKILL), 0);
  active.WaitExit(milliseconds(5000));
  ASSERT_TRUE(standby.WaitForOutLine("active", kReleaseAfterKill).has_value()) << standby.out();
  std::printf(
      "store leader process kill -9 to the next candidate active: %ld ms\n",
      static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - killed).count()));
  EXPECT_TRUE(WaitFor(
      [&] {
        leader = RunJson(2, {"store-leader", "cli-ledger"});
        return leader.is_object() && leader["active"] == true && leader["node"] != first;
      },
      milliseconds(5000)))
      << leader.dump();
  // Still exactly one $all, and one pool of one emitter, on the new leader's node.
  subs = RunJson(2, {"subscriptions", "cli-ledger"});
  EXPECT_EQ(subs.size(), 1u);
  const std::string second = leader.value("node", "");
  EXPECT_TRUE(WaitFor([&] { return one_emitter_on(second); }, milliseconds(5000)))
      << emitters.dump();
  EXPECT_EQ(standby.Stop(SIGTERM, milliseconds(8000)), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        return Run(2, {"store-leader", "cli-ledger"}).code == kExitError;
      },
      milliseconds(5000)));
}

}  // namespace
}  // namespace meshbus::testing
