// Integration tests: three real brokers in this process, meshed over
// loopback TCP, driven through the SDK.
#include <gtest/gtest.h>

#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

#include "test/test_mesh.h"
#include "topics/wire.h"

namespace meshbus::testing {
namespace {

using std::chrono::milliseconds;

std::vector<std::string> Ids(const std::vector<MemberId>& members) {
  std::vector<std::string> out;
  for (const MemberId& m : members) out.push_back(m.ToString());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> MembersAt(Client& c, const std::string& scope, const std::string& group) {
  Result<std::vector<MemberId>> m = c.Members(scope, group);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? Ids(*m) : std::vector<std::string>{"<error>"};
}

bool Sees(Client& c, const std::string& scope, const std::string& group,
          std::vector<std::string> want) {
  std::sort(want.begin(), want.end());
  return WaitFor([&] { return MembersAt(c, scope, group) == want; });
}

// Reads monitor events until `done` says enough, or the deadline passes.
std::vector<MonitorEvent> CollectEvents(
    Client& c, const std::function<bool(const std::vector<MonitorEvent>&)>& done,
    milliseconds timeout = milliseconds(5000)) {
  std::vector<MonitorEvent> events;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done(events) && std::chrono::steady_clock::now() < deadline) {
    Result<Delivery> d = c.Receive(milliseconds(50));
    if (!d.ok()) continue;
    if (auto* e = std::get_if<MonitorEvent>(&*d)) events.push_back(*e);
  }
  return events;
}

bool HasEvent(const std::vector<MonitorEvent>& events, EventKind kind, const std::string& group,
              const std::string& member) {
  for (const MonitorEvent& e : events) {
    if (e.kind != kind || e.group != group) continue;
    for (const MemberId& m : e.members) {
      if (m.ToString() == member) return true;
    }
  }
  return false;
}

class MeshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  }
  TestMesh mesh{3};
};

TEST_F(MeshTest, JoinOnOneNodeIsSeenOnEveryNode) {
  Client a = mesh.Connect(0);
  Client b = mesh.Connect(1);
  Client c = mesh.Connect(2);
  ASSERT_TRUE(a.Join("app", "workers").ok());
  std::string id = a.self().ToString();
  EXPECT_TRUE(Sees(c, "app", "workers", {id}));
  EXPECT_TRUE(Sees(b, "app", "workers", {id}));
  // Local views: only n1 has it locally.
  EXPECT_EQ(Ids(*a.LocalMembers("app", "workers")), std::vector<std::string>{id});
  EXPECT_TRUE(c.LocalMembers("app", "workers")->empty());
  EXPECT_EQ(*c.WhichGroups("app"), std::vector<std::string>{"workers"});
  EXPECT_TRUE(c.WhichLocalGroups("app")->empty());
  EXPECT_EQ(*a.WhichLocalGroups("app"), std::vector<std::string>{"workers"});
  // Scopes are separate namespaces.
  EXPECT_TRUE(c.Members("other", "workers")->empty());
}

TEST_F(MeshTest, LeaveIsSeenEverywhereAndLeavingTwiceIsNotJoined) {
  Client a = mesh.Connect(0);
  Client c = mesh.Connect(2);
  ASSERT_TRUE(a.Join("app", "g").ok());
  ASSERT_TRUE(Sees(c, "app", "g", {a.self().ToString()}));
  ASSERT_TRUE(a.Leave("app", "g").ok());
  EXPECT_TRUE(Sees(c, "app", "g", {}));
  Status again = a.Leave("app", "g");
  EXPECT_EQ(again.code(), Code::kNotJoined) << again.ToString();
  // A group with no members is not listed anywhere.
  EXPECT_TRUE(WaitFor([&] { return c.WhichGroups("app")->empty(); }));
}

TEST_F(MeshTest, DoubleJoinCountsTwiceAndSingleLeaveLeavesOne) {
  Client a = mesh.Connect(0);
  Client b = mesh.Connect(1);
  std::string id = a.self().ToString();
  ASSERT_TRUE(a.Join("app", "g").ok());
  ASSERT_TRUE(a.Join("app", "g").ok());
  EXPECT_TRUE(Sees(b, "app", "g", {id, id}));
  ASSERT_TRUE(a.Leave("app", "g").ok());
  EXPECT_TRUE(Sees(b, "app", "g", {id}));
  ASSERT_TRUE(a.Leave("app", "g").ok());
  EXPECT_TRUE(Sees(b, "app", "g", {}));
}

TEST_F(MeshTest, JoinManyJoinsEveryGroupOrNone) {
  Client a = mesh.Connect(0);
  Client c = mesh.Connect(2);
  ASSERT_TRUE(a.JoinMany("app", {"x", "y", "z", "x"}).ok());
  std::string id = a.self().ToString();
  EXPECT_TRUE(Sees(c, "app", "x", {id, id}));
  EXPECT_TRUE(Sees(c, "app", "z", {id}));
  EXPECT_EQ(*c.WhichGroups("app"), (std::vector<std::string>{"x", "y", "z"}));
  // One bad name: nothing joined, from the SDK and from the broker alike.
  EXPECT_EQ(a.JoinMany("app", {"fine", ""}).code(), Code::kInvalidArgument);
  EXPECT_EQ(a.JoinMany("app", {}).code(), Code::kInvalidArgument);
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect("ipc://" + mesh.client_endpoint(0));
  raw.send(
      zmq::buffer(wire::Encode(wire::ClientRequest(wire::Hello{1, wire::kProtocolVersion, "raw"}))),
      zmq::send_flags::none);
  zmq::message_t reply;
  ASSERT_TRUE(raw.recv(reply));
  raw.send(zmq::buffer(wire::Encode(wire::ClientRequest(wire::JoinMany{2, "app", {"fine", ""}}))),
           zmq::send_flags::none);
  ASSERT_TRUE(raw.recv(reply));
  auto refused = std::get<wire::Reply>(wire::DecodeClientInbound(reply.to_string_view()).value());
  EXPECT_EQ(refused.status.code(), Code::kBadMessage);
  EXPECT_TRUE(a.Members("app", "fine")->empty());
  // Each joined group leaves as usual.
  ASSERT_TRUE(a.Leave("app", "y").ok());
  EXPECT_TRUE(Sees(c, "app", "y", {}));
}

TEST_F(MeshTest, ATurnWithMoreOpsThanADeltaHoldsIsSentInSeveralDeltas) {
  Client c = mesh.Connect(2);
  uint64_t sent_before;
  {
    Client a = mesh.Connect(0);
    std::vector<std::string> groups;
    for (int i = 0; i < 25000; ++i) {
      groups.push_back("g" + std::to_string(i));
      if (groups.size() == wire::kMaxJoinManyGroups || i == 24999) {
        ASSERT_TRUE(a.JoinMany("big", groups).ok());
        groups.clear();
      }
    }
    EXPECT_TRUE(WaitFor([&] { return c.Groups("big")->size() == 25000; }));
    EXPECT_EQ(a.JoinMany("big", std::vector<std::string>(wire::kMaxJoinManyGroups + 1, "x")).code(),
              Code::kInvalidArgument);
    sent_before = mesh.broker(0).Stats()["deltas_sent"];
  }  // the session ends: 25,000 leaves in one turn
  EXPECT_TRUE(WaitFor([&] { return c.Groups("big")->empty(); }));
  EXPECT_GE(mesh.broker(0).Stats()["deltas_sent"], sent_before + 3);
  EXPECT_EQ(mesh.broker(2).Stats()["delta_gaps"], 0u);
}

TEST_F(MeshTest, ScopeMonitorSeesLocalAndRemoteJoinsLeavesAndSessionEnds) {
  Client watcher = mesh.Connect(2);
  Client a = mesh.Connect(0);
  Client local = mesh.Connect(2);
  ASSERT_TRUE(a.Join("app", "before").ok());
  ASSERT_TRUE(Sees(watcher, "app", "before", {a.self().ToString()}));

  Result<MonitorStart> start = watcher.MonitorScope("app");
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  ASSERT_EQ(start->groups.size(), 1u);
  EXPECT_EQ(start->groups[0].group, "before");
  EXPECT_EQ(Ids(start->groups[0].members), std::vector<std::string>{a.self().ToString()});

  std::string ra = a.self().ToString(), rl = local.self().ToString();
  ASSERT_TRUE(a.Join("app", "remote").ok());
  ASSERT_TRUE(local.Join("app", "local").ok());
  ASSERT_TRUE(a.Leave("app", "remote").ok());
  ASSERT_TRUE(local.Leave("app", "local").ok());
  ASSERT_TRUE(local.Join("app", "local").ok());
  ASSERT_TRUE(a.Join("other-scope", "x").ok());  // not in the monitored scope
  local.Close();                                 // its session ends: a leave

  auto events = CollectEvents(watcher, [&](const auto& ev) {
    return HasEvent(ev, EventKind::kLeave, "local", rl) && ev.size() >= 6;
  });
  EXPECT_TRUE(HasEvent(events, EventKind::kJoin, "remote", ra));
  EXPECT_TRUE(HasEvent(events, EventKind::kLeave, "remote", ra));
  EXPECT_TRUE(HasEvent(events, EventKind::kJoin, "local", rl));
  EXPECT_TRUE(HasEvent(events, EventKind::kLeave, "local", rl));
  for (const MonitorEvent& e : events) {
    EXPECT_EQ(e.scope, "app");
    EXPECT_EQ(e.ref, start->ref);
  }
  // The order of one origin's events is kept.
  std::vector<std::string> local_kinds;
  for (const MonitorEvent& e : events) {
    if (e.group == "local") local_kinds.push_back(std::string(wire::EventKindName(e.kind)));
  }
  EXPECT_EQ(local_kinds, (std::vector<std::string>{"join", "leave", "join", "leave"}));
}

TEST_F(MeshTest, GroupMonitorSeesOnlyItsGroupAndDemonitorStopsIt) {
  Client watcher = mesh.Connect(1);
  Client a = mesh.Connect(0);
  Result<MonitorStart> start = watcher.Monitor("app", "g");
  ASSERT_TRUE(start.ok());
  EXPECT_TRUE(start->groups.at(0).members.empty());
  ASSERT_TRUE(a.Join("app", "other").ok());
  ASSERT_TRUE(a.Join("app", "g").ok());
  auto events = CollectEvents(watcher, [](const auto& ev) { return !ev.empty(); });
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].group, "g");
  EXPECT_EQ(events[0].kind, EventKind::kJoin);

  ASSERT_TRUE(watcher.Demonitor(start->ref).ok());
  EXPECT_EQ(watcher.Demonitor(start->ref).code(), Code::kNotFound);
  ASSERT_TRUE(a.Leave("app", "g").ok());
  ASSERT_TRUE(Sees(watcher, "app", "g", {}));
  Result<Delivery> none = watcher.Receive(milliseconds(100));
  EXPECT_EQ(none.status().code(), Code::kTimeout);
}

TEST_F(MeshTest, DispatchHandsDeliveriesToACallbackInOrder) {
  Client watcher = mesh.Connect(1);
  Client a = mesh.Connect(0);
  ASSERT_TRUE(watcher.Monitor("app", "cb").ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a.Join("app", "cb").ok());
    ASSERT_TRUE(a.Leave("app", "cb").ok());
  }
  std::vector<std::string> kinds;
  ASSERT_TRUE(WaitFor([&] {
    auto n = watcher.Consume(
        [&](const Delivery& d) {
          if (auto* e = std::get_if<MonitorEvent>(&d))
            kinds.push_back(std::string(wire::EventKindName(e->kind)));
        },
        milliseconds(20));
    return n.ok() && kinds.size() >= 6;
  }));
  EXPECT_EQ(kinds, (std::vector<std::string>{"join", "leave", "join", "leave", "join", "leave"}));
}

TEST_F(MeshTest, SilentSessionEndsAndItsMembershipsGoEverywhere) {
  // A raw session that says hello and joins, then never heartbeats again,
  // as a client process that hangs or dies without a goodbye.
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect("ipc://" + mesh.client_endpoint(0));
  auto call = [&](const wire::ClientRequest& r) {
    raw.send(zmq::buffer(wire::Encode(r)), zmq::send_flags::none);
    zmq::message_t reply;
    EXPECT_TRUE(raw.recv(reply));
    auto in = wire::DecodeClientInbound(reply.to_string_view());
    EXPECT_TRUE(in.ok());
    return std::get<wire::Reply>(in.value());
  };
  wire::Reply welcome = call(wire::Hello{1, wire::kProtocolVersion, "silent"});
  ASSERT_TRUE(welcome.status.ok());
  auto w = std::get<wire::WelcomeBody>(welcome.body);
  ASSERT_TRUE(call(wire::Join{2, "app", "g"}).status.ok());
  std::string id = MemberId{w.node, w.incarnation, w.session}.ToString();

  Client watcher = mesh.Connect(2);
  ASSERT_TRUE(Sees(watcher, "app", "g", {id}));
  Result<MonitorStart> mon = watcher.Monitor("app", "g");
  ASSERT_TRUE(mon.ok());
  // The session timeout in the test mesh is 400 ms.
  auto events = CollectEvents(
      watcher, [&](const auto& ev) { return HasEvent(ev, EventKind::kLeave, "g", id); });
  EXPECT_TRUE(HasEvent(events, EventKind::kLeave, "g", id));
  EXPECT_TRUE(MembersAt(watcher, "app", "g").empty());
  EXPECT_GE(mesh.broker(0).Stats()["sessions_timed_out"], 1u);
}

TEST_F(MeshTest, ClientThatStaysIdleKeepsItsSession) {
  Client a = mesh.Connect(0);
  Client c = mesh.Connect(2);
  ASSERT_TRUE(a.Join("app", "idle").ok());
  ASSERT_TRUE(Sees(c, "app", "idle", {a.self().ToString()}));
  // Idle for three session timeouts: its heartbeat thread keeps it alive.
  Result<Delivery> d = a.Receive(milliseconds(1200));
  EXPECT_EQ(d.status().code(), Code::kTimeout);
  EXPECT_EQ(MembersAt(c, "app", "idle"), std::vector<std::string>{a.self().ToString()});
  EXPECT_EQ(mesh.broker(0).Stats()["sessions_timed_out"], 0u);
}

TEST_F(MeshTest, DroppedDeltaIsFoundByTheHeartbeatAndRepairedByResync) {
  Client a = mesh.Connect(0);
  Client c = mesh.Connect(2);
  mesh.broker(0).DropNextDeltas(1);
  ASSERT_TRUE(a.Join("app", "lost-delta").ok());  // its delta is never published
  EXPECT_TRUE(Sees(c, "app", "lost-delta", {a.self().ToString()}));
  EXPECT_EQ(mesh.broker(0).Stats()["deltas_dropped_on_purpose"], 1u);
  EXPECT_GE(mesh.broker(2).Stats()["delta_gaps"], 1u);
  EXPECT_GE(mesh.broker(2).Stats()["resyncs_requested"], 1u);
}

TEST_F(MeshTest, DroppedDeltaFollowedByAnotherIsRepairedWithoutLosingEither) {
  Client a = mesh.Connect(0);
  Client c = mesh.Connect(2);
  mesh.broker(0).DropNextDeltas(1);
  ASSERT_TRUE(a.Join("app", "first").ok());   // dropped
  ASSERT_TRUE(a.Join("app", "second").ok());  // arrives, shows the gap
  EXPECT_TRUE(Sees(c, "app", "first", {a.self().ToString()}));
  EXPECT_TRUE(Sees(c, "app", "second", {a.self().ToString()}));
}

TEST_F(MeshTest, MonitorSeesResyncDifferences) {
  Client a = mesh.Connect(0);
  Client watcher = mesh.Connect(2);
  ASSERT_TRUE(watcher.MonitorScope("app").ok());
  mesh.broker(0).DropNextDeltas(1);
  ASSERT_TRUE(a.Join("app", "via-resync").ok());
  auto events = CollectEvents(watcher, [&](const auto& ev) {
    return HasEvent(ev, EventKind::kJoin, "via-resync", a.self().ToString());
  });
  EXPECT_TRUE(HasEvent(events, EventKind::kJoin, "via-resync", a.self().ToString()));
}

TEST_F(MeshTest, StoppedBrokerIsPurgedEverywhereWithLeaveEvents) {
  for (bool graceful : {true, false}) {
    SCOPED_TRACE(graceful ? "graceful stop" : "abrupt stop");
    Client a = mesh.Connect(0);
    Client b = mesh.Connect(1);
    Client c = mesh.Connect(2);
    ASSERT_TRUE(a.Join("app", "g").ok());
    ASSERT_TRUE(b.Join("app", "g").ok());
    std::string ra = a.self().ToString(), rb = b.self().ToString();
    ASSERT_TRUE(Sees(c, "app", "g", {ra, rb}));
    ASSERT_TRUE(Sees(a, "app", "g", {ra, rb}));
    ASSERT_TRUE(c.Monitor("app", "g").ok());
    ASSERT_TRUE(a.Monitor("app", "g").ok());

    mesh.Stop(1, graceful);
    EXPECT_TRUE(Sees(c, "app", "g", {ra}));
    EXPECT_TRUE(Sees(a, "app", "g", {ra}));
    auto events =
        CollectEvents(c, [&](const auto& ev) { return HasEvent(ev, EventKind::kLeave, "g", rb); });
    EXPECT_TRUE(HasEvent(events, EventKind::kLeave, "g", rb));
    // The dead node is listed as dead.
    auto nodes = c.Nodes();
    ASSERT_TRUE(nodes.ok());
    bool listed_dead = false;
    for (const NodeInfo& n : *nodes) listed_dead |= (n.name == "n2" && n.state == "dead");
    EXPECT_TRUE(listed_dead);

    // Clean up for the next round: restart n2 and wait for the full mesh.
    a.Close();
    mesh.Start(1);
    ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
    ASSERT_TRUE(Sees(c, "app", "g", {}));
  }
}

TEST_F(MeshTest, RestartedBrokerReplacesItsOldIncarnation) {
  uint64_t old_incarnation = mesh.broker(1).incarnation();
  std::string old_member;
  Client c = mesh.Connect(2);
  {
    Client b = mesh.Connect(1);
    ASSERT_TRUE(b.Join("app", "g").ok());
    old_member = b.self().ToString();
    ASSERT_TRUE(Sees(c, "app", "g", {old_member}));
    mesh.Stop(1, /*graceful=*/false);
  }
  mesh.Start(1);
  EXPECT_NE(mesh.broker(1).incarnation(), old_incarnation);
  Client b2 = mesh.Connect(1);
  ASSERT_TRUE(b2.Join("app", "g").ok());
  EXPECT_TRUE(Sees(c, "app", "g", {b2.self().ToString()}));
  EXPECT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  auto nodes = c.Nodes();
  ASSERT_TRUE(nodes.ok());
  for (const NodeInfo& n : *nodes) {
    if (n.name == "n2") {
      EXPECT_EQ(n.incarnation, mesh.broker(1).incarnation());
    }
  }
}

TEST_F(MeshTest, NodesListsEveryBrokerAlive) {
  Client c = mesh.Connect(0);
  auto nodes = c.Nodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 3u);
  int self = 0;
  for (const NodeInfo& n : *nodes) {
    EXPECT_EQ(n.state, "alive") << n.name;
    self += n.is_self;
    if (n.is_self) {
      EXPECT_EQ(n.name, "n1");
    }
  }
  EXPECT_EQ(self, 1);
}

TEST(MeshSlowConsumerTest, LostDeliveriesAreCountedAndReportedExactly) {
  BrokerOptions o = TestMesh::FastOptions();
  o.client_queue_messages = 100;  // the smallest allowed, so a reader that sleeps overflows it
  TestMesh mesh(1, o);
  Client watcher = mesh.Connect(0);
  Client a = mesh.Connect(0);
  ASSERT_TRUE(watcher.Monitor("app", "burst").ok());
  constexpr int kPairs = 3000;
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_TRUE(a.Join("app", "burst").ok());
    ASSERT_TRUE(a.Leave("app", "burst").ok());
  }
  // Read what was queued, then one more event, which carries the count of
  // anything lost after the last delivery that got through.
  uint64_t received = 0, lost = 0, gaps = 0;
  auto drain = [&] {
    while (true) {
      Result<Delivery> d = watcher.Receive(milliseconds(200));
      if (!d.ok()) return;
      if (std::holds_alternative<MonitorEvent>(*d)) ++received;
      if (auto* g = std::get_if<GapNotice>(&*d)) {
        lost += g->lost;
        ++gaps;
      }
    }
  };
  drain();
  ASSERT_TRUE(a.Join("app", "burst").ok());
  drain();
  EXPECT_GT(gaps, 0u) << "the queue never overflowed: the test proves nothing";
  EXPECT_EQ(received + lost, 2u * kPairs + 1)
      << received << " received, " << lost << " reported lost";
  EXPECT_EQ(mesh.broker(0).Stats()["client_deliveries_lost"], lost);
}

TEST(MeshSlowConsumerTest, AReplyIsNeverLostWhenTheClientsQueueIsFull) {
  // The watcher (a raw client, so that nothing reads for it) monitors a busy
  // scope, so its queue is full; then it makes a call. The reply waits its
  // turn instead of being lost: it comes once the watcher reads, and the
  // call did take effect.
  BrokerOptions o = TestMesh::FastOptions();
  o.client_queue_messages = 100;
  o.session_timeout = milliseconds(30000);  // the raw watcher sends no heartbeats
  TestMesh mesh(1, o);
  zmq::context_t ctx;
  zmq::socket_t w(ctx, zmq::socket_type::dealer);
  w.set(zmq::sockopt::linger, 0);
  w.set(zmq::sockopt::rcvhwm, 100);
  w.connect("ipc://" + mesh.client_endpoint(0));
  // Reads until the reply to `req` (everything else is a delivery), or the deadline.
  auto reply_to = [&](uint64_t req) -> std::optional<wire::Reply> {
    auto deadline = std::chrono::steady_clock::now() + milliseconds(5000);
    zmq::pollitem_t item{w.handle(), 0, ZMQ_POLLIN, 0};
    while (std::chrono::steady_clock::now() < deadline) {
      if (zmq::poll(&item, 1, milliseconds(100)) != 1) continue;
      zmq::message_t m;
      (void)w.recv(m);
      auto in = wire::DecodeClientInbound(m.to_string_view());
      if (!in.ok()) return std::nullopt;
      if (auto* r = std::get_if<wire::Reply>(&*in); r && r->req == req) return *r;
    }
    return std::nullopt;
  };
  w.send(
      zmq::buffer(wire::Encode(wire::ClientRequest(wire::Hello{1, wire::kProtocolVersion, "w"}))));
  ASSERT_TRUE(reply_to(1).has_value());
  w.send(zmq::buffer(wire::Encode(wire::ClientRequest(wire::Monitor{2, "app", std::nullopt}))));
  ASSERT_TRUE(reply_to(2).has_value());

  Client a = mesh.Connect(0);
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(a.Join("app", "burst").ok());
    ASSERT_TRUE(a.Leave("app", "burst").ok());
  }
  ASSERT_GT(mesh.broker(0).Stats()["client_deliveries_lost"], 0u) << "the queue never filled";
  w.send(zmq::buffer(wire::Encode(wire::ClientRequest(wire::Join{3, "app", "mine"}))));
  EXPECT_TRUE(WaitFor([&] { return mesh.broker(0).Stats()["client_replies_delayed"] > 0; }))
      << "the reply never had to wait";
  std::optional<wire::Reply> r = reply_to(3);
  ASSERT_TRUE(r.has_value()) << "the reply was lost";
  EXPECT_TRUE(r->status.ok()) << r->status.ToString();
  EXPECT_EQ(a.Members("app", "mine")->size(), 1u);
}

TEST(MeshDiscoveryTest, PeersLearnTheWholeMeshFromOneSeed) {
  // Five brokers, each seeded with at most two earlier ones: all must meet.
  TestMesh mesh(5);
  EXPECT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
}

TEST(MeshClientTest, ConnectToNothingIsUnreachableNotAHang) {
  ClientOptions o;
  o.endpoint = "ipc:///tmp/meshbus-test-no-such-broker.ipc";
  o.connect_timeout = milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  Result<Client> c = Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnreachable) << c.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  o.endpoint = "bogus://x";
  EXPECT_EQ(Client::Connect(o).status().code(), Code::kInvalidArgument);
}

TEST(MeshClientTest, BrokerGoneMidSessionGivesErrorsNotHangs) {
  TestMesh mesh(1);
  ClientOptions o;
  o.endpoint = "ipc://" + mesh.client_endpoint(0);
  o.call_timeout = milliseconds(300);
  Result<Client> c = Client::Connect(o);
  ASSERT_TRUE(c.ok());
  mesh.Stop(0, false);
  Status s = c->Join("app", "g");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.code() == Code::kUnreachable || s.code() == Code::kTimeout) << s.ToString();
}

TEST(MeshClientTest, ASessionTheBrokerNoLongerHasIsReportedToTheClient) {
  TestMesh mesh(1);
  Client c = mesh.Connect(0);
  ASSERT_TRUE(c.Join("app", "g").ok());
  // The broker restarts: it has never heard of this session.
  mesh.Stop(0, /*graceful=*/false);
  mesh.Start(0);
  Status lost;
  EXPECT_TRUE(WaitFor([&] {
    Result<Delivery> d = c.Receive(milliseconds(20));
    lost = d.status();
    return d.status().code() == Code::kUnavailable;
  }));
  EXPECT_NE(lost.message().find("ended this session"), std::string::npos) << lost.ToString();
  EXPECT_EQ(c.Join("app", "g").code(), Code::kUnavailable);
  // A new client works as usual.
  Client fresh = mesh.Connect(0);
  EXPECT_TRUE(fresh.Join("app", "g").ok());
}

// A call in flight when the broker ends the session fails as soon as the
// client hears of it, not at its timeout: nothing would ever answer it.
TEST(MeshClientTest, ACallInFlightFailsWhenTheBrokerEndsTheSession) {
  TestMesh mesh(1);
  Client requester = mesh.Connect(0), responder = mesh.Connect(0);
  ASSERT_TRUE(responder.Join("app", "silent").ok());
  Result<Message> answer = Status::Internal("not answered");
  std::atomic<bool> done{false};
  std::thread t([&] {
    answer = requester.Request("app", "silent", "q", std::chrono::seconds(30));
    done = true;
  });
  // Once the responder has it, the request is in flight; the broker
  // restarts and has never heard of either session.
  EXPECT_TRUE(WaitFor([&] {
    Result<Delivery> d = responder.Receive(milliseconds(20));
    return d.ok() && std::holds_alternative<Message>(*d);
  }));
  const auto restart = std::chrono::steady_clock::now();
  mesh.Stop(0, /*graceful=*/false);
  mesh.Start(0);
  EXPECT_TRUE(WaitFor([&] { return done.load(); })) << "still waiting for its 30 s timeout";
  t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - restart, std::chrono::seconds(10));
  EXPECT_EQ(answer.status().code(), Code::kUnavailable) << answer.status().ToString();
  EXPECT_NE(answer.status().message().find("ended this session"), std::string::npos)
      << answer.status().ToString();
}

TEST(MeshClientTest, MoveAssignmentEndsTheSessionItReplaces) {
  TestMesh mesh(1);
  Client watcher = mesh.Connect(0);
  Client c = mesh.Connect(0);
  ASSERT_TRUE(c.Join("app", "g").ok());
  ASSERT_EQ(watcher.Members("app", "g")->size(), 1u);
  c = mesh.Connect(0);  // the first session says goodbye now
  EXPECT_TRUE(watcher.Members("app", "g")->empty());
  EXPECT_EQ(mesh.broker(0).Stats()["sessions_timed_out"], 0u);
  EXPECT_TRUE(c.Join("app", "g").ok());
}

TEST(MeshClientTest, InvalidArgumentsAreRefusedByTheSdk) {
  TestMesh mesh(1);
  Client c = mesh.Connect(0);
  EXPECT_EQ(c.Join("", "g").code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Join("s", "").code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Join("s", std::string(300, 'x')).code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Join("s", "tab\there").code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Members("", "g").status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(c.Join("s", "g").ok());  // and the session still works
}

}  // namespace
}  // namespace meshbus::testing
