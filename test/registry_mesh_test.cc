// Integration tests of the name registry (issue 4, DESIGN.md §5) on real
// brokers in this process, meshed over loopback TCP, driven through the SDK:
// three voters n1..n3 and one learner n4. Registration, lookups, monitors and
// sends by name; names of ended sessions; the leader killed; a voter restarted
// from its data directory; a minority partition; a linearizability run with
// brokers killed and partitioned; bad input. Records (key/value entries no
// member owns): seen everywhere, create-if-absent, delete, surviving their
// writer and the leader's kill, no_leader in a minority, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "test/linearizability.h"
#include "test/test_mesh.h"

namespace meshbus::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kBrokers = 4;  // n1..n3 vote, n4 learns
constexpr int kLearner = 3;  // n4
const std::vector<int> kVoters = {0, 1, 2};

long Ms(Clock::duration d) {
  return static_cast<long>(std::chrono::duration_cast<milliseconds>(d).count());
}

std::vector<std::string> NamesOf(const std::vector<NameInfo>& infos) {
  std::vector<std::string> out;
  for (const NameInfo& i : infos) out.push_back(i.name);
  return out;
}

class RegistryMeshTest : public ::testing::Test {
 protected:
  static BrokerOptions Options() {
    BrokerOptions o = TestMesh::FastOptions();
    o.voters = {"n1", "n2", "n3"};  // n4 has the same list without itself: a learner
    // Fast, but not so fast that a loaded machine (2 shared cores) declares a
    // live session or node dead: that would release names the tests hold.
    o.suspicion_timeout = milliseconds(300);
    o.probe_timeout = milliseconds(200);
    o.session_timeout = milliseconds(2000);
    return o;
  }

  explicit RegistryMeshTest(const BrokerOptions& options = Options()) : mesh(kBrokers, options) {}

  void SetUp() override {
    ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
    admin.resize(kBrokers);
    for (int i = 0; i < kBrokers; ++i) admin[i].emplace(Connect(i, "admin"));
    ASSERT_TRUE(WaitFor([&] { return !AgreedLeader().empty(); }, milliseconds(8000))) << Describe();
  }

  Client Connect(int i, const std::string& name, milliseconds call_timeout = milliseconds(3000)) {
    ClientOptions o;
    o.endpoint = "ipc://" + mesh.client_endpoint(i);
    o.name = name;
    o.call_timeout = call_timeout;
    Result<Client> c = Client::Connect(o);
    if (!c.ok())
      throw std::runtime_error("connect to " + mesh.name(i) + ": " + c.status().ToString());
    return std::move(c.value());
  }

  static int Index(const std::string& node) { return std::stoi(node.substr(1)) - 1; }

  std::vector<int> Running() {
    std::vector<int> out;
    for (int i = 0; i < kBrokers; ++i) {
      if (mesh.running(i)) out.push_back(i);
    }
    return out;
  }

  // The leader every broker in `among` (default: every running one) names,
  // if they all name the same one, it is among them, and it says it leads;
  // "" otherwise.
  std::string AgreedLeader(std::vector<int> among = {}) {
    if (among.empty()) among = Running();
    std::string leader;
    for (int i : among) {
      Result<LeaderInfo> l = admin.at(i)->Leader();
      if (!l.ok() || l->leader.empty()) return "";
      if (!leader.empty() && l->leader != leader) return "";
      leader = l->leader;
    }
    int li = Index(leader);
    if (std::find(among.begin(), among.end(), li) == among.end()) return "";
    Result<LeaderInfo> self = admin.at(li)->Leader();
    if (!self.ok() || self->role != "leader" || self->leader != leader) return "";
    return leader;
  }

  // Every running broker's view of the consensus, for failure messages.
  std::string Describe() {
    std::string out;
    for (int i : Running()) {
      if (!admin.at(i)) continue;
      Result<LeaderInfo> l = admin.at(i)->Leader();
      if (!l.ok()) {
        out += mesh.name(i) + ": " + l.status().ToString() + "\n";
        continue;
      }
      out += l->node + ": role " + l->role + ", leader '" + l->leader + "', term " +
             std::to_string(l->term) + ", commit " + std::to_string(l->commit) + ", applied " +
             std::to_string(l->applied) + (l->problem.empty() ? "" : ", problem: " + l->problem) +
             "\n";
    }
    return out;
  }

  void Stop(int i, bool graceful) {
    admin.at(i).reset();
    mesh.Stop(i, graceful);
  }
  void Start(int i) {
    mesh.Start(i);
    admin.at(i).emplace(Connect(i, "admin"));
  }

  // True once broker i's local copy says `name` is held by `holder`.
  bool SeesHolder(int i, const std::string& name, const MemberId& holder) {
    Result<NameInfo> w = admin.at(i)->Whereis(name);
    return w.ok() && w->holder == holder;
  }
  bool SeesFree(int i, const std::string& name) {
    Result<NameInfo> w = admin.at(i)->Whereis(name);
    return !w.ok() && w.status().code() == Code::kNotRegistered;
  }
  bool EverywhereHolder(const std::string& name, const MemberId& holder) {
    for (int i : Running()) {
      if (!SeesHolder(i, name, holder)) return false;
    }
    return true;
  }
  bool EverywhereFree(const std::string& name) {
    for (int i : Running()) {
      if (!SeesFree(i, name)) return false;
    }
    return true;
  }
  // Every running broker lists the same names with the same holders.
  bool SameListingEverywhere(std::vector<NameInfo>* listing = nullptr) {
    std::optional<std::vector<NameInfo>> first;
    for (int i : Running()) {
      Result<std::vector<NameInfo>> n = admin.at(i)->Names();
      if (!n.ok()) return false;
      if (!first) {
        first = *n;
      } else if (*first != *n) {
        return false;
      }
    }
    if (listing && first) *listing = *first;
    return true;
  }

  TestMesh mesh;
  std::vector<std::optional<Client>> admin;  // one per running broker
};

// ---- register, whereis, taken, unregister, names, monitors, send -----------

TEST_F(RegistryMeshTest, RegisterOnAFollowerIsSeenEverywhere) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int L = Index(leader);
  int F = L == 0 ? 1 : 0;  // a follower voter
  int O = 3 - L - F;       // the other follower voter
  Client holder = Connect(F, "holder");
  Client other = Connect(O, "other");
  Client learner = Connect(kLearner, "learner");
  Client watcher = Connect(kLearner, "watcher");

  // Every broker agrees on the leader; the learner knows itself as one.
  Result<LeaderInfo> li = learner.Leader();
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->role, "learner");
  EXPECT_TRUE(li->problem.empty()) << li->problem;
  Result<LeaderInfo> ll = admin[L]->Leader();
  ASSERT_TRUE(ll.ok());
  EXPECT_GT(ll->term, 0u);
  std::map<std::string, bool> voters;
  for (const auto& m : ll->members) voters[m.node] = m.voter;
  EXPECT_EQ(voters,
            (std::map<std::string, bool>{{"n1", true}, {"n2", true}, {"n3", true}, {"n4", false}}))
      << Describe();

  Result<NamesMonitorStart> mon = watcher.MonitorNames("svc/");
  ASSERT_TRUE(mon.ok()) << mon.status().ToString();
  EXPECT_TRUE(mon->names.empty());

  // Registered on a follower: acknowledged once committed, so a consistent
  // read anywhere sees it at once (no polling), the learner's included.
  ASSERT_TRUE(holder.Register("svc/a", "meta-a").ok());
  Result<NameInfo> c = learner.WhereisConsistent("svc/a");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->holder, holder.self());
  EXPECT_EQ(c->metadata, "meta-a");
  // The local copies follow within a replication round.
  for (int i = 0; i < kBrokers; ++i) {
    EXPECT_TRUE(WaitFor([&] { return SeesHolder(i, "svc/a", holder.self()); }))
        << mesh.name(i) << " never saw svc/a";
  }
  Result<NameInfo> w = learner.Whereis("svc/a");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->metadata, "meta-a");

  // Taken, with the holder.
  MemberId who;
  Status taken = other.Register("svc/a", "mine", &who);
  EXPECT_EQ(taken.code(), Code::kTaken) << taken.ToString();
  EXPECT_EQ(who, holder.self());
  Status taken2 = learner.Register("svc/a");
  EXPECT_EQ(taken2.code(), Code::kTaken) << taken2.ToString();
  // Registering again by the holder is ok and replaces the metadata.
  ASSERT_TRUE(holder.Register("svc/a", "meta-a2").ok());
  c = other.WhereisConsistent("svc/a");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->metadata, "meta-a2");

  // Only the holder unregisters.
  MemberId not_mine;
  Status nh = other.Unregister("svc/a", &not_mine);
  EXPECT_EQ(nh.code(), Code::kNotHolder) << nh.ToString();
  EXPECT_EQ(not_mine, holder.self());
  EXPECT_TRUE(other.WhereisConsistent("svc/a").ok());

  ASSERT_TRUE(holder.Register("svc/b", "").ok());
  ASSERT_TRUE(other.Register("other/c", "").ok());

  // Names(prefix) from every local copy.
  for (int i = 0; i < kBrokers; ++i) {
    std::vector<std::string> got;
    EXPECT_TRUE(WaitFor([&] {
      Result<std::vector<NameInfo>> n = admin[i]->Names("svc/");
      if (n.ok()) got = NamesOf(*n);
      return got == std::vector<std::string>{"svc/a", "svc/b"};
    })) << mesh.name(i)
        << " lists " << ::testing::PrintToString(got);
  }
  Result<std::vector<NameInfo>> all = learner.Names();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(NamesOf(*all), (std::vector<std::string>{"other/c", "svc/a", "svc/b"}));

  // Send by name reaches the holder, wherever it is.
  Result<MemberId> to = other.SendByName("svc/a", "hello by name");
  ASSERT_TRUE(to.ok()) << to.status().ToString();
  EXPECT_EQ(*to, holder.self());
  Result<Delivery> d = holder.Receive(milliseconds(3000));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const Message* m = std::get_if<Message>(&*d);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->payload, "hello by name");
  EXPECT_EQ(m->from, other.self());
  EXPECT_EQ(m->kind, MessageKind::kDirect);

  // Unregister by the holder; then nobody holds it.
  ASSERT_TRUE(holder.Unregister("svc/a").ok());
  Status again = holder.Unregister("svc/a");
  EXPECT_EQ(again.code(), Code::kNotRegistered) << again.ToString();
  Result<NameInfo> gone = learner.WhereisConsistent("svc/a");
  EXPECT_EQ(gone.status().code(), Code::kNotRegistered) << gone.status().ToString();
  EXPECT_TRUE(WaitFor([&] { return EverywhereFree("svc/a"); }));
  Result<MemberId> nobody = other.SendByName("svc/a", "anyone?");
  EXPECT_EQ(nobody.status().code(), Code::kNotRegistered);

  // The monitor saw every change under its prefix, in the log's order, and
  // nothing else.
  struct Seen {
    NameEventKind kind;
    std::string name, metadata;
    MemberId holder;
    uint64_t ref;
  };
  std::vector<Seen> events;
  WaitFor([&] {
    Result<Delivery> e = watcher.Receive(milliseconds(20));
    if (e.ok()) {
      if (const NameEvent* ne = std::get_if<NameEvent>(&*e)) {
        events.push_back({ne->kind, ne->entry.name, ne->entry.metadata, ne->entry.holder, ne->ref});
      }
    }
    return events.size() >= 4;
  });
  ASSERT_EQ(events.size(), 4u);
  const NameEventKind R = NameEventKind::kRegistered, U = NameEventKind::kUnregistered;
  std::vector<std::pair<NameEventKind, std::string>> want = {
      {R, "svc/a"}, {R, "svc/a"}, {R, "svc/b"}, {U, "svc/a"}};
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kind, want[i].first) << i;
    EXPECT_EQ(events[i].name, want[i].second) << i;
    EXPECT_EQ(events[i].holder, holder.self()) << i;
    EXPECT_EQ(events[i].ref, mon->ref) << i;
  }
  EXPECT_EQ(events[0].metadata, "meta-a");
  EXPECT_EQ(events[1].metadata, "meta-a2");
  Result<Delivery> more = watcher.Receive(milliseconds(200));
  EXPECT_FALSE(more.ok()) << "an event beyond the four expected";

  // A demonitored watcher hears nothing more.
  ASSERT_TRUE(watcher.Demonitor(mon->ref).ok());
  ASSERT_TRUE(holder.Register("svc/d").ok());
  EXPECT_FALSE(watcher.Receive(milliseconds(200)).ok());
}

// ---- ended sessions ----------------------------------------------------------

TEST_F(RegistryMeshTest, NamesOfAnEndedSessionAreFreedEverywhere) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int F = Index(leader) == 0 ? 1 : 0;
  Client watcher = Connect(0, "watcher");
  Result<NamesMonitorStart> mon = watcher.MonitorNames("sess/");
  ASSERT_TRUE(mon.ok());

  // Closed: on a follower voter.
  {
    Client c = Connect(F, "closes");
    ASSERT_TRUE(c.Register("sess/x").ok());
    ASSERT_TRUE(c.Register("sess/x2").ok());
    ASSERT_TRUE(WaitFor([&] { return EverywhereHolder("sess/x", c.self()); }));
    ASSERT_TRUE(c.Close().ok());
    auto closed_at = Clock::now();
    EXPECT_TRUE(WaitFor([&] { return EverywhereFree("sess/x") && EverywhereFree("sess/x2"); }));
    std::printf("[ registry ] names of a closed session freed everywhere in %ld ms\n",
                Ms(Clock::now() - closed_at));
  }
  // Destroyed: on the learner, whose releases also go through the leader.
  MemberId was;
  {
    Client c = Connect(kLearner, "destroyed");
    was = c.self();
    ASSERT_TRUE(c.Register("sess/y", "m").ok());
    ASSERT_TRUE(WaitFor([&] { return EverywhereHolder("sess/y", c.self()); }));
  }
  EXPECT_TRUE(WaitFor([&] { return EverywhereFree("sess/y"); }));
  // And the name can be taken again, by a member elsewhere.
  Client next = Connect(2, "next");
  EXPECT_TRUE(next.Register("sess/y").ok());
  Result<NameInfo> now = admin[kLearner]->WhereisConsistent("sess/y");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->holder, next.self());

  // The monitor saw the releases as unregistrations by the old holders.
  int unregistered_y = 0;
  WaitFor([&] {
    Result<Delivery> e = watcher.Receive(milliseconds(20));
    if (e.ok()) {
      const NameEvent* ne = std::get_if<NameEvent>(&*e);
      if (ne && ne->kind == NameEventKind::kUnregistered && ne->entry.name == "sess/y") {
        EXPECT_EQ(ne->entry.holder, was);
        ++unregistered_y;
      }
    }
    return unregistered_y > 0;
  });
  EXPECT_EQ(unregistered_y, 1);
}

// ---- the leader killed -------------------------------------------------------

TEST_F(RegistryMeshTest, KilledLeaderIsReplacedWithin2sAndNoAcknowledgedNameIsLost) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int L = Index(leader);
  std::vector<int> survivors;
  for (int i = 0; i < kBrokers; ++i) {
    if (i != L) survivors.push_back(i);
  }
  // Members on every surviving broker (names of the leader's own members go
  // with it); each registration acknowledged just before the kill.
  std::vector<Client> clients;
  for (int i : survivors) clients.push_back(Connect(i, "holder"));
  std::map<std::string, MemberId> acked;
  for (int k = 0; k < 30; ++k) {
    Client& c = clients[k % clients.size()];
    std::string name = "kill/" + std::to_string(k);
    Status s = c.Register(name, "v" + std::to_string(k));
    ASSERT_TRUE(s.ok()) << name << ": " << s.ToString();
    acked[name] = c.self();
  }

  auto stopped_at = Clock::now();
  Stop(L, /*graceful=*/false);
  std::string next;
  bool elected = WaitFor(
      [&] {
        next = AgreedLeader(survivors);
        return !next.empty() && next != leader;
      },
      milliseconds(2000));
  long took = Ms(Clock::now() - stopped_at);
  std::printf("[ registry ] leader %s killed: %s leads after %ld ms\n", leader.c_str(),
              next.c_str(), took);
  ASSERT_TRUE(elected) << "no new leader within 2 s of killing " << leader << ":\n" << Describe();
  EXPECT_LT(took, 2000);

  // Every acknowledged registration is there, on the new leader.
  Client on_leader = Connect(Index(next), "reader");
  for (const auto& [name, member] : acked) {
    Result<NameInfo> w = on_leader.WhereisConsistent(name);
    ASSERT_TRUE(w.ok()) << name << ": " << w.status().ToString();
    EXPECT_EQ(w->holder, member) << name;
  }
  // Writes work again, from every survivor (the learner's included).
  auto first_write = Clock::now();
  for (size_t k = 0; k < clients.size(); ++k) {
    std::string name = "kill/after/" + std::to_string(k);
    Status s = clients[k].Register(name);
    EXPECT_TRUE(s.ok()) << mesh.name(survivors[k]) << ": " << s.ToString();
  }
  std::printf("[ registry ] writes after the new election: %ld ms for %zu registrations\n",
              Ms(Clock::now() - first_write), clients.size());
  EXPECT_TRUE(WaitFor([&] { return SameListingEverywhere(); })) << Describe();
}

// ---- a voter restarted from its data directory -------------------------------

TEST_F(RegistryMeshTest, RestartedVoterRecoversFromItsDataDirAndCatchesUp) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int L = Index(leader);
  int V = L == 2 ? 1 : 2;                       // a follower voter
  Client keeper = Connect(kLearner, "keeper");  // on the learner: stays up throughout
  Client on_leader = Connect(L, "writer");
  ASSERT_TRUE(keeper.Register("r/before", "b").ok());
  ASSERT_TRUE(WaitFor([&] { return SeesHolder(V, "r/before", keeper.self()); }));

  Stop(V, /*graceful=*/false);
  std::vector<std::string> during;
  for (int k = 0; k < 10; ++k) {
    std::string name = "r/during/" + std::to_string(k);
    Status s = (k % 2 ? keeper : on_leader).Register(name);
    ASSERT_TRUE(s.ok()) << name << " with one voter down: " << s.ToString();
    during.push_back(name);
  }
  auto restarted_at = Clock::now();
  Start(V);
  // It catches up: its local copy has what was registered while it was down.
  EXPECT_TRUE(WaitFor([&] {
    for (const std::string& n : during) {
      if (!admin[V]->Whereis(n).ok()) return false;
    }
    return SeesHolder(V, "r/before", keeper.self());
  })) << Describe();
  std::printf("[ registry ] restarted voter %s caught up in %ld ms\n", mesh.name(V).c_str(),
              Ms(Clock::now() - restarted_at));
  // It takes part again: registrations from it and consistent reads through it.
  Client on_v = Connect(V, "restarted");
  EXPECT_TRUE(WaitFor([&] { return on_v.Register("r/after").ok(); })) << Describe();
  Result<NameInfo> w = on_v.WhereisConsistent("r/during/3");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->holder, keeper.self());
  Result<LeaderInfo> lv = on_v.Leader();
  ASSERT_TRUE(lv.ok());
  EXPECT_TRUE(lv->problem.empty()) << lv->problem;

  // Every voter restarted at once: only their data directories hold the
  // log (the learner's copy is not a source for voters). The learner's
  // member keeps its names.
  for (int i : kVoters) Stop(i, /*graceful=*/false);
  on_v = Connect(kLearner, "placeholder");  // the old one's broker is gone
  on_leader = Connect(kLearner, "placeholder2");
  auto all_down = Clock::now();
  for (int i : kVoters) Start(i);
  std::string again;
  ASSERT_TRUE(WaitFor(
      [&] {
        again = AgreedLeader();
        return !again.empty();
      },
      milliseconds(8000)))
      << Describe();
  std::printf("[ registry ] all voters restarted: %s leads after %ld ms\n", again.c_str(),
              Ms(Clock::now() - all_down));
  Client reader = Connect(Index(again), "reader");
  for (const std::string& n : during) {
    if (n.back() % 2 == 0) continue;  // held by the writer on a restarted voter: released
    Result<NameInfo> r = reader.WhereisConsistent(n);
    ASSERT_TRUE(r.ok()) << n << ": " << r.status().ToString();
    EXPECT_EQ(r->holder, keeper.self()) << n;
  }
  Result<NameInfo> b = reader.WhereisConsistent("r/before");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->holder, keeper.self());
  // Names whose holders were on the restarted brokers are released.
  EXPECT_TRUE(WaitFor([&] { return EverywhereFree("r/during/0") && EverywhereFree("r/after"); }))
      << Describe();
  EXPECT_TRUE(keeper.Register("r/final").ok());
}

// A voter that was down while the others compacted their logs past what it
// has catches up from the leader's snapshot (InstallSnapshot over `calls`).
class RegistrySnapshotMeshTest : public RegistryMeshTest {
 protected:
  static BrokerOptions SnapshotOptions() {
    BrokerOptions o = Options();
    o.raft_snapshot_entries = 5;
    return o;
  }
  RegistrySnapshotMeshTest() : RegistryMeshTest(SnapshotOptions()) {}
  uint64_t Stat(int i, const std::string& name) {
    Result<std::map<std::string, uint64_t>> s = admin.at(i)->Stats();
    return s.ok() && s->count(name) ? s->at(name) : 0;
  }
};

TEST_F(RegistrySnapshotMeshTest, AVoterBehindTheLeadersSnapshotCatchesUpFromIt) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int L = Index(leader);
  int V = L == 2 ? 1 : 2;  // a follower voter
  Client keeper = Connect(kLearner, "keeper");
  Stop(V, /*graceful=*/false);
  std::vector<std::string> during;
  for (int k = 0; k < 40; ++k) {
    during.push_back("s/" + std::to_string(k));
    ASSERT_TRUE(keeper.Register(during.back(), "m" + std::to_string(k)).ok()) << during.back();
  }
  ASSERT_TRUE(WaitFor([&] { return Stat(L, "raft_snapshots_taken") > 0; }));
  Start(V);
  ASSERT_TRUE(WaitFor([&] {
    for (const std::string& n : during) {
      if (!SeesHolder(V, n, keeper.self())) return false;
    }
    return true;
  })) << Describe();
  EXPECT_GE(Stat(V, "raft_snapshots_installed"), 1u);
  Result<NameInfo> w = admin[V]->Whereis("s/17");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->metadata, "m17");
  // It votes and acknowledges again: with the third voter stopped, writes
  // need it.
  int O = 3 - L - V;
  Stop(O, /*graceful=*/false);
  EXPECT_TRUE(WaitFor([&] { return keeper.Register("s/after").ok(); })) << Describe();
  EXPECT_TRUE(WaitFor([&] { return SeesHolder(V, "s/after", keeper.self()); }));
}

// ---- a minority partition -----------------------------------------------------

TEST_F(RegistryMeshTest, MinorityPartitionAnswersNoLeaderAndTheMajorityCarriesOn) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int L = Index(leader);
  int V = L == 0 ? 1 : 0;  // the other majority voter
  int M = 3 - L - V;       // the minority voter
  std::vector<int> majority = {L, V}, minority = {M, kLearner};
  // Calls long enough for the broker's own answer (no_leader after its wait
  // for a leader) rather than the client's timeout.
  milliseconds call_timeout(6000);
  Client maj = Connect(V, "majority", call_timeout);
  Client maj2 = Connect(L, "majority2", call_timeout);
  Client min = Connect(M, "minority", call_timeout);
  Client lrn = Connect(kLearner, "learner", call_timeout);
  ASSERT_TRUE(maj.Register("part/a", "before").ok());
  ASSERT_TRUE(WaitFor([&] { return EverywhereHolder("part/a", maj.self()); }));

  auto cut_at = Clock::now();
  mesh.Partition(majority, minority);

  // The minority: no_leader for writes and consistent reads (once it has
  // noticed: each such answer comes after the broker's wait for a leader),
  // never a yes. Its two clients ask at once, beside the majority's work.
  auto poll_no_leader = [&](const char* what, const std::function<Status()>& call) {
    int attempts = 0;
    std::vector<std::string> answers;
    bool no_leader = WaitFor(
        [&] {
          ++attempts;
          Status s = call();
          answers.push_back(s.ToString());
          EXPECT_NE(s.code(), Code::kOk) << what << " succeeded on the minority side";
          return s.code() == Code::kNoLeader;
        },
        milliseconds(10000));
    EXPECT_TRUE(no_leader) << what << ": " << ::testing::PrintToString(answers);
    std::printf("[ registry ] minority %s answered no_leader %ld ms after the cut (%d tries)\n",
                what, Ms(Clock::now() - cut_at), attempts);
  };
  std::thread on_min([&] {
    poll_no_leader("register", [&] { return min.Register("part/m"); });
    Status contested = min.Register("part/c", "minority's");
    EXPECT_EQ(contested.code(), Code::kNoLeader) << contested.ToString();
  });
  std::thread on_learner([&] {
    poll_no_leader("whereis_consistent", [&] { return lrn.WhereisConsistent("part/a").status(); });
    Status unreg = lrn.Unregister("part/a");
    EXPECT_EQ(unreg.code(), Code::kNoLeader) << unreg.ToString();
  });

  // The majority carries on.
  bool majority_writes = WaitFor([&] { return maj.Register("part/b").ok(); }, milliseconds(5000));
  bool contested_ok = maj2.Register("part/c", "majority's").ok();
  on_min.join();
  on_learner.join();
  ASSERT_TRUE(majority_writes) << Describe();
  ASSERT_TRUE(contested_ok);
  Result<NameInfo> r = maj.WhereisConsistent("part/c");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->holder, maj2.self());

  // ...while whereis still answers on the minority, from its local copy, which
  // cannot have what the majority did since.
  for (Client* c : {&min, &lrn}) {
    Result<NameInfo> w = c->Whereis("part/a");
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_EQ(w->holder, maj.self());
    EXPECT_EQ(c->Whereis("part/b").status().code(), Code::kNotRegistered);
  }
  Result<LeaderInfo> ml = min.Leader();
  ASSERT_TRUE(ml.ok());
  EXPECT_NE(ml->role, "leader");

  mesh.Heal();
  auto healed_at = Clock::now();
  // Everyone converges to one listing, in which each name has the holder the
  // majority gave it.
  std::vector<NameInfo> listing;
  EXPECT_TRUE(WaitFor(
      [&] {
        if (!SameListingEverywhere(&listing)) return false;
        std::vector<std::string> names = NamesOf(listing);
        return std::count(names.begin(), names.end(), "part/b") &&
               std::count(names.begin(), names.end(), "part/c");
      },
      milliseconds(10000)))
      << Describe();
  std::printf("[ registry ] listings converged %ld ms after the heal\n",
              Ms(Clock::now() - healed_at));
  std::map<std::string, MemberId> holders;
  for (const NameInfo& n : listing) {
    EXPECT_TRUE(holders.emplace(n.name, n.holder).second) << n.name << " listed twice";
  }
  EXPECT_EQ(holders["part/a"], maj.self());
  EXPECT_EQ(holders["part/b"], maj.self());
  EXPECT_EQ(holders["part/c"], maj2.self());
  for (const auto& [name, h] : holders) {
    EXPECT_NE(h, min.self()) << name << " was given to the minority's member";
  }
  // And the former minority writes again (once the leader has readmitted
  // its brokers, if it had declared them dead).
  EXPECT_TRUE(WaitFor([&] { return min.Register("part/after").ok(); }, milliseconds(10000)))
      << Describe();
  Result<NameInfo> after = lrn.WhereisConsistent("part/after");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->holder, min.self());
}

// ---- linearizability under kills and partitions ------------------------------

TEST_F(RegistryMeshTest, ConcurrentClientsStayLinearizableThroughKillsAndPartitions) {
  namespace lin = meshbus::testing::lin;
  constexpr int kThreads = 5;
  constexpr int kMaxOpsPerThread = 1500;
  const std::vector<std::string> kNames = {"lin/a", "lin/b", "lin/c"};

  lin::Recorder recorder;
  std::mutex mu;  // guards up, generation, minority, members
  std::vector<bool> up(kBrokers, true);
  std::vector<int> generation(kBrokers, 0);
  std::set<int> minority;              // brokers cut off from the majority now
  std::map<std::string, int> members;  // live member -> its broker
  std::atomic<bool> stop{false};
  std::vector<std::string> unexpected;  // answers no op may get
  std::atomic<int> ok_ops{0}, failed_ops{0}, unknown_ops{0};
  std::map<std::string, int> answers;  // "register: taken" -> count; guarded by mu
  auto tally = [&](const char* op, const Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    ++answers[std::string(op) + ": " + std::string(CodeName(s.code()))];
  };

  // A member that may lose its names without asking: its broker is killed or
  // cut off from the leader. It may take effect any time from now, or never.
  auto record_release = [&](const std::string& member) {
    recorder.Invoke(-1, lin::OpKind::kRelease, "", member);  // never completed: unknown
  };

  auto worker = [&](int t) {
    std::mt19937 rng(1000 + t);
    std::optional<Client> c;
    int at = -1, gen = -1;
    std::string me;
    for (int n = 0; n < kMaxOpsPerThread && !stop; ++n) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (c && (!up[at] || generation[at] != gen)) {
          members.erase(me);
          c.reset();
        }
        if (!c) {
          std::vector<int> candidates;
          for (int i = 0; i < kBrokers; ++i) {
            if (up[i]) candidates.push_back(i);
          }
          // First on every broker in turn, then wherever.
          at = gen < 0 && up[t % kBrokers] ? t % kBrokers : candidates[rng() % candidates.size()];
          ClientOptions o;
          o.endpoint = "ipc://" + mesh.client_endpoint(at);
          o.name = "lin" + std::to_string(t);
          o.call_timeout = milliseconds(1000);
          Result<Client> r = Client::Connect(o);
          if (!r.ok()) continue;
          c.emplace(std::move(r.value()));
          gen = generation[at];
          me = c->self().ToString();
          members[me] = at;
          if (minority.count(at)) record_release(me);
        }
      }
      const std::string& name = kNames[rng() % kNames.size()];
      int dice = rng() % 100;
      if (dice < 40) {
        uint64_t id = recorder.Invoke(t, lin::OpKind::kRegister, name, me);
        MemberId holder;
        Status s = c->Register(name, "", &holder);
        tally("register", s);
        switch (s.code()) {
          case Code::kOk:
            (void)recorder.Complete(id, lin::Outcome::kOk);
            ++ok_ops;
            break;
          case Code::kTaken:
            (void)recorder.Complete(id, lin::Outcome::kTaken, holder.ToString());
            ++ok_ops;
            break;
          case Code::kNoLeader:
            (void)recorder.Complete(id, lin::Outcome::kFailed);
            ++failed_ops;
            break;
          default:
            ++unknown_ops;  // left incomplete: unknown
        }
        if (s.code() == Code::kInvalidArgument || s.code() == Code::kInternal ||
            s.code() == Code::kNotHolder || s.code() == Code::kNotRegistered) {
          std::lock_guard<std::mutex> lock(mu);
          unexpected.push_back("register: " + s.ToString());
        }
      } else if (dice < 65) {
        uint64_t id = recorder.Invoke(t, lin::OpKind::kUnregister, name, me);
        Status s = c->Unregister(name);
        tally("unregister", s);
        switch (s.code()) {
          case Code::kOk:
            (void)recorder.Complete(id, lin::Outcome::kOk);
            ++ok_ops;
            break;
          case Code::kNotRegistered:
            (void)recorder.Complete(id, lin::Outcome::kNotRegistered);
            ++ok_ops;
            break;
          case Code::kNotHolder:
            (void)recorder.Complete(id, lin::Outcome::kNotHolder);
            ++ok_ops;
            break;
          case Code::kNoLeader:
            (void)recorder.Complete(id, lin::Outcome::kFailed);
            ++failed_ops;
            break;
          default:
            ++unknown_ops;
        }
        if (s.code() == Code::kInvalidArgument || s.code() == Code::kInternal ||
            s.code() == Code::kTaken) {
          std::lock_guard<std::mutex> lock(mu);
          unexpected.push_back("unregister: " + s.ToString());
        }
      } else {
        uint64_t id = recorder.Invoke(t, lin::OpKind::kWhereis, name, "");
        Result<NameInfo> r = c->WhereisConsistent(name);
        tally("whereis_consistent", r.status());
        switch (r.status().code()) {
          case Code::kOk:
            (void)recorder.Complete(id, lin::Outcome::kHolder, r->holder.ToString());
            ++ok_ops;
            break;
          case Code::kNotRegistered:
            (void)recorder.Complete(id, lin::Outcome::kNone);
            ++ok_ops;
            break;
          case Code::kNoLeader:
            (void)recorder.Complete(id, lin::Outcome::kFailed);
            ++failed_ops;
            break;
          default:
            ++unknown_ops;
        }
        if (r.status().code() == Code::kInvalidArgument || r.status().code() == Code::kInternal) {
          std::lock_guard<std::mutex> lock(mu);
          unexpected.push_back("whereis_consistent: " + r.status().ToString());
        }
      }
      // Pacing, so that the history stays a size the checker settles quickly.
      std::this_thread::sleep_for(milliseconds(2));
    }
    // Its session ends with the Client: its names are released.
    std::lock_guard<std::mutex> lock(mu);
    if (c) record_release(me);
    members.erase(me);
    c.reset();
  };

  auto started = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);

  // The nemesis, on this thread: it alone touches the mesh.
  auto pace = [&](milliseconds d) { std::this_thread::sleep_for(d); };  // traffic meanwhile
  auto kill = [&](int i) {
    std::lock_guard<std::mutex> lock(mu);
    up[i] = false;
    ++generation[i];
    for (const auto& [m, b] : members) {
      if (b == i) record_release(m);
    }
    Stop(i, /*graceful=*/false);
  };
  auto restart = [&](int i) {
    Start(i);
    std::lock_guard<std::mutex> lock(mu);
    up[i] = true;
  };
  auto cut = [&](const std::vector<int>& major, const std::vector<int>& minor) {
    std::lock_guard<std::mutex> lock(mu);
    for (int i : minor) minority.insert(i);
    for (const auto& [m, b] : members) {
      if (minority.count(b)) record_release(m);
    }
    mesh.Partition(major, minor);
  };
  auto heal = [&] {
    std::lock_guard<std::mutex> lock(mu);
    minority.clear();
    mesh.Heal();
  };
  auto leader_now = [&]() {
    std::string l;
    WaitFor(
        [&] {
          l = AgreedLeader();
          return !l.empty();
        },
        milliseconds(5000));
    return l.empty() ? -1 : Index(l);
  };
  std::vector<std::string> schedule;
  std::string nemesis_failure;
  // Returns false (with nemesis_failure set) if the mesh did not recover.
  auto nemesis = [&]() -> bool {
    auto need_leader = [&](int* l) {
      *l = leader_now();
      if (*l < 0) nemesis_failure = "no leader after " + schedule.back() + ":\n" + Describe();
      return *l >= 0;
    };
    int L;
    pace(milliseconds(500));
    // 1. A follower voter killed and restarted (early: calls stuck on it end
    // within the client's deadline, while the run goes on).
    if (!need_leader(&L)) return false;
    int F = L == 2 ? 1 : 2;
    kill(F);
    schedule.push_back("kill follower " + mesh.name(F));
    pace(milliseconds(600));
    restart(F);
    // 2. The leader cut off alone, longer than a broker waits for a leader.
    if (!need_leader(&L)) return false;
    pace(milliseconds(300));
    std::vector<int> rest;
    for (int i = 0; i < kBrokers; ++i) {
      if (i != L) rest.push_back(i);
    }
    cut(rest, {L});
    schedule.push_back("isolate leader " + mesh.name(L));
    pace(milliseconds(2500));
    heal();
    // 3. The leader killed, then restarted.
    if (!need_leader(&L)) return false;
    pace(milliseconds(300));
    kill(L);
    schedule.push_back("kill leader " + mesh.name(L));
    pace(milliseconds(900));
    restart(L);
    // 4. A follower voter and the learner cut off from the leader's side,
    // longer than a broker waits for a leader.
    if (!need_leader(&L)) return false;
    int V = L == 0 ? 1 : 0, M = 3 - L - V;
    pace(milliseconds(300));
    cut({L, V}, {M, kLearner});
    schedule.push_back("cut " + mesh.name(M) + "+n4 from " + mesh.name(L) + "+" + mesh.name(V));
    pace(milliseconds(2600));
    heal();
    if (!need_leader(&L)) return false;
    pace(milliseconds(500));
    return true;
  };
  bool recovered = false;
  try {
    recovered = nemesis();
  } catch (const std::exception& e) {
    nemesis_failure = std::string("nemesis: ") + e.what();
  }
  if (!nemesis_failure.empty()) heal();
  stop = true;
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(recovered) << nemesis_failure;
  long run_ms = Ms(Clock::now() - started);

  lin::History history = recorder.Snapshot();
  auto check_start = Clock::now();
  Result<lin::Verdict> verdict = lin::Check(history);
  long check_ms = Ms(Clock::now() - check_start);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  std::printf(
      "[ registry ] linearizability: %zu ops (%d answered, %d no_leader, %d unknown) by %d "
      "clients in %ld ms through: %s; checked in %ld ms, %lu steps\n",
      history.ops.size(), ok_ops.load(), failed_ops.load(), unknown_ops.load(), kThreads, run_ms,
      ::testing::PrintToString(schedule).c_str(), check_ms,
      static_cast<unsigned long>(verdict->steps));
  std::printf("[ registry ] answers: %s\n", ::testing::PrintToString(answers).c_str());
  EXPECT_TRUE(verdict->linearizable()) << verdict->explanation;
  EXPECT_TRUE(unexpected.empty()) << ::testing::PrintToString(unexpected);
  EXPECT_GT(ok_ops.load(), 200) << "too few answered ops for the run to mean much";

  // Afterwards every broker converges to one listing.
  EXPECT_TRUE(
      WaitFor([&] { return mesh.AllConverged() && SameListingEverywhere(); }, milliseconds(10000)))
      << Describe();
}

// ---- bad input -------------------------------------------------------------------

TEST_F(RegistryMeshTest, BadNamesAndMetadataAreInvalidArguments) {
  Client c = Connect(1, "bad");
  std::string too_long(256, 'n'), longest(255, 'n');
  std::string too_much(4097, 'm'), most(4096, 'm');
  auto invalid = [](const Status& s) { return s.code() == Code::kInvalidArgument; };
  EXPECT_TRUE(invalid(c.Register(""))) << c.Register("").ToString();
  EXPECT_TRUE(invalid(c.Register(too_long)));
  EXPECT_TRUE(invalid(c.Register("ctl\nname")));
  EXPECT_TRUE(invalid(c.Register("meta", too_much)));
  EXPECT_TRUE(invalid(c.Unregister("")));
  EXPECT_TRUE(invalid(c.Unregister(too_long)));
  EXPECT_TRUE(invalid(c.Whereis("").status()));
  EXPECT_TRUE(invalid(c.Whereis(too_long).status()));
  EXPECT_TRUE(invalid(c.WhereisConsistent("").status()));
  EXPECT_TRUE(invalid(c.WhereisConsistent(too_long).status()));
  EXPECT_TRUE(invalid(c.SendByName("", "x").status()));
  EXPECT_TRUE(invalid(c.Names(too_long).status()));
  EXPECT_TRUE(invalid(c.MonitorNames(too_long).status()));
  // Nothing of it reached the registry; the limits themselves are fine.
  Result<std::vector<NameInfo>> names = c.Names();
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty());
  Status s = c.Register(longest, most);
  EXPECT_TRUE(s.ok()) << s.ToString();
  Result<NameInfo> w = c.WhereisConsistent(longest);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->metadata, most);
  // A session still usable after all that.
  EXPECT_TRUE(c.Unregister(longest).ok());
}

// ---- records -------------------------------------------------------------------

// True once broker i's local copy has record `key` with `value`
// (nullopt: has no such record).
bool LocalRecordIs(Client& c, const std::string& key, const std::optional<std::string>& value) {
  Result<std::string> r = c.GetRecord(key);
  if (!value) return !r.ok() && r.status().code() == Code::kNotFound;
  return r.ok() && *r == *value;
}

TEST_F(RegistryMeshTest, RecordsPutOnAFollowerAreSeenEverywhereAndOutliveTheirWriter) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int L = Index(leader);
  int F = L == 0 ? 1 : 0;  // a follower voter
  int O = 3 - L - F;       // the other follower voter
  std::optional<Client> writer(Connect(F, "writer"));
  Client other = Connect(O, "other");

  const std::string kSub = "store/orders/sub/$all";
  const std::string kValue("{\"pool\":2}\0\xff", 12);
  ASSERT_TRUE(writer->PutRecord(kSub, kValue).ok());
  ASSERT_TRUE(writer->PutRecord("store/orders/emitter/1", "e1").ok());
  ASSERT_TRUE(writer->PutRecord("store/other/sub/x", "").ok());
  // Acknowledged: every broker's consistent read has it at once, the
  // learner's included; local copies within a replication round.
  for (int i = 0; i < kBrokers; ++i) {
    Result<std::string> r = admin[i]->GetRecord(kSub, /*consistent=*/true);
    ASSERT_TRUE(r.ok()) << mesh.name(i) << ": " << r.status().ToString();
    EXPECT_EQ(*r, kValue) << mesh.name(i);
    EXPECT_TRUE(WaitFor([&] { return LocalRecordIs(*admin[i], kSub, kValue); })) << mesh.name(i);
  }
  const std::vector<Record> kOrders = {{"store/orders/emitter/1", "e1"}, {kSub, kValue}};
  for (bool consistent : {true, false}) {
    for (int i = 0; i < kBrokers; ++i) {
      EXPECT_TRUE(WaitFor([&] {
        Result<std::vector<Record>> rs = admin[i]->Records("store/orders/", consistent);
        return rs.ok() && *rs == kOrders;
      })) << mesh.name(i)
          << (consistent ? " consistent" : " local");
    }
  }
  Result<std::vector<Record>> all = admin[kLearner]->Records("", true);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->size(), 3u);
  Result<std::vector<Record>> none = admin[L]->Records("store/nothing/", true);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());

  // Put replaces; create-if-absent refuses a second creation, from any broker.
  ASSERT_TRUE(other.PutRecord(kSub, "replaced").ok());
  Result<std::string> replaced = admin[kLearner]->GetRecord(kSub, true);
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  EXPECT_EQ(*replaced, "replaced");
  Status created = writer->CreateRecord("store/orders/default", "d1");
  ASSERT_TRUE(created.ok()) << created.ToString();
  for (Client* c : {&other, &*writer, &*admin[kLearner]}) {
    Status again = c->CreateRecord("store/orders/default", "d2");
    EXPECT_EQ(again.code(), Code::kExists) << again.ToString();
  }
  Result<std::string> kept = other.GetRecord("store/orders/default", true);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, "d1");

  // Delete: gone everywhere; a second delete and reads say not_found.
  ASSERT_TRUE(other.DeleteRecord("store/other/sub/x").ok());
  Status twice = writer->DeleteRecord("store/other/sub/x");
  EXPECT_EQ(twice.code(), Code::kNotFound) << twice.ToString();
  EXPECT_EQ(admin[L]->GetRecord("store/other/sub/x", true).status().code(), Code::kNotFound);
  for (int i = 0; i < kBrokers; ++i) {
    EXPECT_TRUE(WaitFor([&] { return LocalRecordIs(*admin[i], "store/other/sub/x", {}); }))
        << mesh.name(i);
  }

  // The writer's session ends: its name is released, its records stay.
  ASSERT_TRUE(writer->Register("store/orders/leader").ok());
  MemberId writer_id = writer->self();
  ASSERT_TRUE(WaitFor([&] { return EverywhereHolder("store/orders/leader", writer_id); }));
  writer.reset();
  ASSERT_TRUE(WaitFor([&] { return EverywhereFree("store/orders/leader"); })) << Describe();
  Result<std::vector<Record>> after = other.Records("store/orders/", true);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, (std::vector<Record>{{"store/orders/default", "d1"},
                                         {"store/orders/emitter/1", "e1"},
                                         {kSub, "replaced"}}));
}

TEST_F(RegistryMeshTest, RecordsSurviveTheLeadersKill) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int L = Index(leader);
  std::vector<int> survivors;
  for (int i = 0; i < kBrokers; ++i) {
    if (i != L) survivors.push_back(i);
  }
  // Written through the leader's own broker, which then dies with its client.
  std::map<std::string, std::string> acked;
  {
    Client on_leader = Connect(L, "writer");
    for (int k = 0; k < 20; ++k) {
      std::string key = "kill/rec/" + std::to_string(k);
      std::string value(100 * k, static_cast<char>('a' + k));
      Status s = k % 2 ? on_leader.PutRecord(key, value) : on_leader.CreateRecord(key, value);
      ASSERT_TRUE(s.ok()) << key << ": " << s.ToString();
      acked[key] = value;
    }
    Stop(L, /*graceful=*/false);
  }
  std::string next;
  ASSERT_TRUE(WaitFor(
      [&] {
        next = AgreedLeader(survivors);
        return !next.empty() && next != leader;
      },
      milliseconds(5000)))
      << Describe();
  // The new leader has every acknowledged record.
  Client reader = Connect(Index(next), "reader");
  Result<std::vector<Record>> rs = reader.Records("kill/rec/", /*consistent=*/true);
  ASSERT_TRUE(rs.ok()) << rs.status().ToString();
  std::map<std::string, std::string> got;
  for (const Record& r : *rs) got[r.key] = r.value;
  EXPECT_EQ(got, acked);
  // Records written before the kill are kept as they were: a create of one
  // is refused, on the new leader too.
  EXPECT_EQ(reader.CreateRecord("kill/rec/0", "again").code(), Code::kExists);
  // And writes work again from every survivor; every copy converges.
  for (int i : survivors) {
    Status s = admin[i]->PutRecord("kill/after/" + mesh.name(i), "x");
    EXPECT_TRUE(s.ok()) << mesh.name(i) << ": " << s.ToString();
  }
  for (int i : survivors) {
    EXPECT_TRUE(WaitFor([&] {
      Result<std::vector<Record>> local = admin[i]->Records("kill/");
      return local.ok() && local->size() == acked.size() + survivors.size();
    })) << mesh.name(i);
  }
  // The killed broker, back, catches up with them.
  Start(L);
  EXPECT_TRUE(WaitFor([&] {
    Result<std::vector<Record>> local = admin[L]->Records("kill/");
    return local.ok() && local->size() == acked.size() + survivors.size();
  })) << Describe();
}

TEST_F(RegistryMeshTest, RecordWritesInAMinorityAnswerNoLeader) {
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  int L = Index(leader);
  int V = L == 0 ? 1 : 0;
  int M = 3 - L - V;
  milliseconds call_timeout(6000);
  Client maj = Connect(V, "majority", call_timeout);
  Client min = Connect(M, "minority", call_timeout);
  Client lrn = Connect(kLearner, "learner", call_timeout);
  ASSERT_TRUE(maj.PutRecord("part/rec", "before").ok());
  ASSERT_TRUE(WaitFor([&] {
    return LocalRecordIs(min, "part/rec", "before") && LocalRecordIs(lrn, "part/rec", "before");
  }));

  mesh.Partition({L, V}, {M, kLearner});
  // Each answer comes after the broker's wait for a leader; never a yes.
  auto no_leader = [&](const char* what, const std::function<Status()>& call) {
    std::vector<std::string> answers;
    bool ok = WaitFor(
        [&] {
          Status s = call();
          answers.push_back(s.ToString());
          EXPECT_NE(s.code(), Code::kOk) << what << " succeeded on the minority side";
          return s.code() == Code::kNoLeader;
        },
        milliseconds(10000));
    EXPECT_TRUE(ok) << what << ": " << ::testing::PrintToString(answers);
  };
  std::thread on_min([&] {
    no_leader("put", [&] { return min.PutRecord("part/rec", "minority's"); });
    EXPECT_EQ(min.CreateRecord("part/new", "m").code(), Code::kNoLeader);
    EXPECT_EQ(min.DeleteRecord("part/rec").code(), Code::kNoLeader);
  });
  std::thread on_learner([&] {
    no_leader("consistent records", [&] { return lrn.Records("part/", true).status(); });
    EXPECT_EQ(lrn.GetRecord("part/rec", true).status().code(), Code::kNoLeader);
  });
  // The majority carries on.
  bool majority_writes =
      WaitFor([&] { return maj.PutRecord("part/rec", "majority's").ok(); }, milliseconds(5000));
  on_min.join();
  on_learner.join();
  ASSERT_TRUE(majority_writes) << Describe();
  // The minority's local copies still answer, with what they had.
  EXPECT_TRUE(LocalRecordIs(min, "part/rec", "before"));
  EXPECT_TRUE(LocalRecordIs(lrn, "part/new", {}));

  mesh.Heal();
  for (Client* c : {&min, &lrn}) {
    EXPECT_TRUE(
        WaitFor([&] { return LocalRecordIs(*c, "part/rec", "majority's"); }, milliseconds(10000)))
        << Describe();
  }
  EXPECT_TRUE(
      WaitFor([&] { return min.CreateRecord("part/new", "after").ok(); }, milliseconds(10000)))
      << Describe();
}

TEST_F(RegistryMeshTest, BadRecordKeysAndValuesAreRefusedClearly) {
  Client c = Connect(1, "bad");
  const std::string too_long(256, 'k'), longest(255, 'k');
  const std::string too_big(kMaxRecordValueBytes + 1, 'v'), biggest(kMaxRecordValueBytes, '\xff');
  auto invalid = [](const Status& s) {
    return s.code() == Code::kInvalidArgument &&
           s.message().find("record key") != std::string::npos;
  };
  for (const std::string& key : {std::string(), too_long, std::string("ctl\nkey"),
                                 std::string("nul\0", 4), std::string("\x7f")}) {
    EXPECT_TRUE(invalid(c.PutRecord(key, "v"))) << c.PutRecord(key, "v").ToString();
    EXPECT_TRUE(invalid(c.CreateRecord(key, "v")));
    EXPECT_TRUE(invalid(c.DeleteRecord(key)));
    EXPECT_TRUE(invalid(c.GetRecord(key).status()));
    EXPECT_TRUE(invalid(c.GetRecord(key, true).status()));
  }
  EXPECT_TRUE(invalid(c.Records(too_long).status()));
  EXPECT_TRUE(invalid(c.Records("a\tb", true).status()));
  Status big = c.PutRecord("k", too_big);
  EXPECT_EQ(big.code(), Code::kTooLarge) << big.ToString();
  EXPECT_NE(big.message().find("65536"), std::string::npos) << big.ToString();
  EXPECT_EQ(c.CreateRecord("k", too_big).code(), Code::kTooLarge);
  // Nothing of it reached the registry; the limits themselves are fine.
  Result<std::vector<Record>> none = c.Records("", true);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  Status s = c.PutRecord(longest, biggest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  Result<std::string> r = c.GetRecord(longest, true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, biggest);
  EXPECT_EQ(c.GetRecord("missing", true).status().code(), Code::kNotFound);
  EXPECT_EQ(c.GetRecord("missing").status().code(), Code::kNotFound);
  EXPECT_TRUE(c.DeleteRecord(longest).ok());
}

}  // namespace
}  // namespace meshbus::testing
