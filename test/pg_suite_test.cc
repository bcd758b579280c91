// The scenarios of OTP's pg test suite, on real brokers: netsplits and
// heals, a three-way split, forced resync, and a large state synced to a
// newcomer while joins go on.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "test/test_mesh.h"

namespace meshbus::testing {
namespace {

using std::chrono::milliseconds;

// Every group of a scope with its sorted members, as one broker sees them.
std::map<std::string, std::vector<std::string>> View(Client& c, const std::string& scope) {
  std::map<std::string, std::vector<std::string>> view;
  auto groups = c.WhichGroups(scope);
  if (!groups.ok()) return {{"<error>", {groups.status().ToString()}}};
  for (const std::string& g : *groups) {
    auto members = c.Members(scope, g);
    if (!members.ok()) return {{"<error>", {members.status().ToString()}}};
    std::vector<std::string> ids;
    for (const MemberId& m : *members) ids.push_back(m.ToString());
    std::sort(ids.begin(), ids.end());
    view[g] = ids;
  }
  return view;
}

bool ViewsConverge(std::vector<Client*> clients, const std::string& scope,
                   const std::map<std::string, std::vector<std::string>>& want,
                   milliseconds timeout = milliseconds(8000)) {
  return WaitFor(
      [&] {
        for (Client* c : clients) {
          if (View(*c, scope) != want) return false;
        }
        return true;
      },
      timeout);
}

// True when broker i sees `count` nodes alive and every other one dead (not
// merely suspect).
bool SeesAlive(TestMesh& mesh, int i, int count) {
  Client c = mesh.Connect(i);
  auto nodes = c.Nodes();
  if (!nodes.ok()) return false;
  int alive = 0, dead = 0;
  for (const NodeInfo& n : *nodes) {
    alive += n.state == "alive";
    dead += n.state == "dead";
  }
  return alive == count && alive + dead == mesh.size();
}

TEST(PgSuiteTest, NetsplitThenHealConverges) {
  TestMesh mesh(3);
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  Client a = mesh.Connect(0), b = mesh.Connect(1), c = mesh.Connect(2);
  std::string ra = a.self().ToString(), rb = b.self().ToString(), rc = c.self().ToString();
  ASSERT_TRUE(a.Join("s", "shared").ok());
  ASSERT_TRUE(c.Join("s", "shared").ok());
  ASSERT_TRUE(ViewsConverge({&a, &b, &c}, "s", {{"shared", {ra, rc}}}));

  mesh.Partition({0}, {1, 2});
  // Each side declares the other dead and purges it.
  ASSERT_TRUE(WaitFor([&] { return SeesAlive(mesh, 0, 1) && SeesAlive(mesh, 2, 2); }));
  EXPECT_EQ(View(a, "s"), (std::map<std::string, std::vector<std::string>>{{"shared", {ra}}}));
  // Changes on both sides during the split.
  ASSERT_TRUE(a.Join("s", "left-side").ok());
  ASSERT_TRUE(c.Leave("s", "shared").ok());
  ASSERT_TRUE(b.Join("s", "right-side").ok());

  mesh.Heal();
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }, milliseconds(8000)));
  std::map<std::string, std::vector<std::string>> want = {
      {"shared", {ra}}, {"left-side", {ra}}, {"right-side", {rb}}};
  EXPECT_TRUE(ViewsConverge({&a, &b, &c}, "s", want)) << "views differ after heal";
}

TEST(PgSuiteTest, ThreeWaySplitThenHealConverges) {
  TestMesh mesh(3);
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  Client a = mesh.Connect(0), b = mesh.Connect(1), c = mesh.Connect(2);
  std::string ra = a.self().ToString(), rb = b.self().ToString(), rc = c.self().ToString();
  for (Client* x : {&a, &b, &c}) ASSERT_TRUE(x->Join("s", "all").ok());
  std::vector<std::string> all = {ra, rb, rc};
  std::sort(all.begin(), all.end());
  ASSERT_TRUE(ViewsConverge({&a, &b, &c}, "s", {{"all", all}}));

  mesh.broker(0).SetBlockedPeers({"n2", "n3"});
  mesh.broker(1).SetBlockedPeers({"n1", "n3"});
  mesh.broker(2).SetBlockedPeers({"n1", "n2"});
  ASSERT_TRUE(WaitFor(
      [&] { return SeesAlive(mesh, 0, 1) && SeesAlive(mesh, 1, 1) && SeesAlive(mesh, 2, 1); }));
  for (int i = 0; i < 3; ++i) {
    Client x = mesh.Connect(i);
    EXPECT_EQ(x.Members("s", "all")->size(), 1u)
        << "node " << i << " still lists members of purged nodes";
  }
  ASSERT_TRUE(a.Join("s", "a-only").ok());
  ASSERT_TRUE(b.Leave("s", "all").ok());
  ASSERT_TRUE(c.Join("s", "c-only").ok());
  ASSERT_TRUE(c.Join("s", "c-only").ok());

  mesh.Heal();
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }, milliseconds(8000)));
  std::map<std::string, std::vector<std::string>> want = {
      {"all", {ra, rc}}, {"a-only", {ra}}, {"c-only", {rc, rc}}};
  std::sort(want["all"].begin(), want["all"].end());
  EXPECT_TRUE(ViewsConverge({&a, &b, &c}, "s", want));
}

TEST(PgSuiteTest, ForcedResyncKeepsTheViewAndTellsMonitorsNothing) {
  TestMesh mesh(3);
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  Client a = mesh.Connect(0), c = mesh.Connect(2);
  ASSERT_TRUE(a.Join("s", "g").ok());
  ASSERT_TRUE(a.Join("s", "g").ok());
  auto want = std::map<std::string, std::vector<std::string>>{
      {"g", {a.self().ToString(), a.self().ToString()}}};
  ASSERT_TRUE(ViewsConverge({&c}, "s", want));
  ASSERT_TRUE(c.MonitorScope("s").ok());
  uint64_t applied_before = mesh.broker(2).Stats()["snapshots_applied"];

  mesh.broker(2).ForceResync();
  ASSERT_TRUE(
      WaitFor([&] { return mesh.broker(2).Stats()["snapshots_applied"] >= applied_before + 2; }));
  EXPECT_EQ(View(c, "s"), want);
  Result<Delivery> d = c.Receive(milliseconds(200));
  EXPECT_EQ(d.status().code(), Code::kTimeout) << "a resync that changed nothing produced an event";
}

TEST(PgSuiteTest, EmptyGroupIsNotListedAfterARemoteNodeIsPurged) {
  // OTP's pg listed such groups in which_groups; we must not.
  TestMesh mesh(2);
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  Client a = mesh.Connect(0);
  {
    Client b = mesh.Connect(1);
    ASSERT_TRUE(b.Join("s", "remote-only").ok());
    ASSERT_TRUE(WaitFor([&] { return a.WhichGroups("s")->size() == 1; }));
  }
  mesh.Stop(1, /*graceful=*/false);
  ASSERT_TRUE(WaitFor([&] { return a.Members("s", "remote-only")->empty(); }));
  EXPECT_TRUE(a.WhichGroups("s")->empty());
  EXPECT_TRUE(a.Groups("")->empty());
}

TEST(PgSuiteTest, TenThousandGroupsSyncToANewBrokerWhileJoinsContinue) {
  BrokerOptions opts = TestMesh::FastOptions();
  if (getenv("MESHBUS_TEST_LOG")) opts.log_level = getenv("MESHBUS_TEST_LOG");
  TestMesh mesh(3, opts, /*started=*/2);
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  Client a = mesh.Connect(0);
  constexpr int kGroups = 10000;
  for (int i = 0; i < kGroups; ++i) ASSERT_TRUE(a.Join("big", "g" + std::to_string(i)).ok());

  // Joins go on, from another node, while the newcomer syncs.
  // The joiner's session outlives its thread: closing it would leave its groups.
  std::atomic<bool> stop{false};
  std::atomic<int> live_joins{0};
  Client b = mesh.Connect(1, "joiner");
  std::thread joiner([&] {
    for (int i = 0; i < 3000 && !stop; ++i) {
      if (b.Join("big", "live" + std::to_string(i)).ok()) ++live_joins;
    }
  });
  mesh.Start(2);
  Client c = mesh.Connect(2);
  // Wait until the joiner is done, then for the newcomer to have everything.
  joiner.join();
  stop = true;
  size_t want = kGroups + live_joins;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto g = c.Groups("big");
        return g.ok() && g->size() == want;
      },
      milliseconds(20000)))
      << "newcomer sees " << c.Groups("big")->size() << " of " << want << " groups";
  if (HasFailure()) {
    auto nodes = c.Nodes();
    if (nodes.ok())
      for (const NodeInfo& n : *nodes)
        std::printf("n3 sees %s %s\n", n.name.c_str(), n.state.c_str());
    else
      std::printf("nodes: %s\n", nodes.status().ToString().c_str());
    int live_on_c = 0;
    for (auto& g : *c.Groups("big")) live_on_c += g.group.rfind("live", 0) == 0;
    std::printf("live groups on n3: %d\n", live_on_c);
    for (auto& [k, v] : mesh.broker(2).Stats())
      std::printf("n3 %s=%lu\n", k.c_str(), (unsigned long)v);
    for (auto& [k, v] : mesh.broker(1).Stats())
      std::printf("n2 %s=%lu\n", k.c_str(), (unsigned long)v);
  }
  auto on_a = a.Groups("big");
  auto on_c = c.Groups("big");
  ASSERT_TRUE(on_a.ok() && on_c.ok());
  ASSERT_EQ(on_a->size(), on_c->size());
  for (size_t i = 0; i < on_a->size(); ++i) {
    EXPECT_EQ((*on_a)[i].group, (*on_c)[i].group);
    EXPECT_EQ((*on_a)[i].count, (*on_c)[i].count);
  }
}

}  // namespace
}  // namespace meshbus::testing
