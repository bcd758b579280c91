// Integration tests of messaging: publish/subscribe, broadcast, dispatch,
// request/reply and direct sends across real brokers in this process, meshed
// over loopback TCP, driven through the SDK.
#include <gtest/gtest.h>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "test/test_mesh.h"
#include "topics/wire.h"

namespace meshbus::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kProbe[] = "probe";

// What a client received: messages (probes left out) and lost counts.
struct Inbox {
  std::vector<Message> messages;
  std::vector<Outcome> outcomes;
  uint64_t lost = 0;
  size_t gaps = 0;
};

// Reads deliveries into `box` until `done` holds or the deadline passes.
void Collect(Client& c, Inbox* box, const std::function<bool(const Inbox&)>& done,
             milliseconds timeout = milliseconds(5000)) {
  auto deadline = Clock::now() + timeout;
  while (!done(*box) && Clock::now() < deadline) {
    Result<Delivery> d = c.Receive(milliseconds(20));
    if (!d.ok()) continue;
    if (auto* m = std::get_if<Message>(&*d)) {
      if (m->payload != kProbe) box->messages.push_back(std::move(*m));
    } else if (auto* o = std::get_if<Outcome>(&*d)) {
      box->outcomes.push_back(std::move(*o));
    } else if (auto* g = std::get_if<GapNotice>(&*d)) {
      box->lost += g->lost;
      ++box->gaps;
    }
  }
}

// Reads what is there now, then as long as anything more comes within `quiet`.
Inbox Drain(Client& c, milliseconds quiet = milliseconds(150)) {
  Inbox box;
  size_t seen = SIZE_MAX;
  while (true) {
    size_t before = box.messages.size() + box.lost + box.outcomes.size();
    if (before == seen) break;
    seen = before;
    Collect(
        c, &box, [&](const Inbox& b) { return false; }, quiet);
  }
  return box;
}

// Subscriptions reach publishers asynchronously (as in ZeroMQ): publishes a
// probe on `topic` until `sub` gets one, so what follows is not lost to a
// subscription still on its way. Probes are then drained.
bool AwaitSubscribed(Client& pub, Client& sub, const std::string& topic) {
  auto deadline = Clock::now() + milliseconds(5000);
  while (Clock::now() < deadline) {
    if (!pub.Publish(topic, kProbe).ok()) return false;
    Result<Delivery> d = sub.Receive(milliseconds(20));
    if (!d.ok()) continue;
    if (auto* m = std::get_if<Message>(&*d); m && m->payload == kProbe) {
      Drain(sub, milliseconds(50));
      return true;
    }
  }
  return false;
}

// The same for a group's broadcasts: until each member got a probe.
bool AwaitBroadcastReach(Client& sender, std::vector<Client*> members, const std::string& scope,
                         const std::string& group) {
  std::vector<bool> reached(members.size(), false);
  auto deadline = Clock::now() + milliseconds(5000);
  while (Clock::now() < deadline) {
    if (std::all_of(reached.begin(), reached.end(), [](bool b) { return b; })) {
      for (Client* m : members) Drain(*m, milliseconds(50));
      return true;
    }
    if (!sender.Broadcast(scope, group, kProbe).ok()) return false;
    for (size_t i = 0; i < members.size(); ++i) {
      Result<Delivery> d = members[i]->Receive(milliseconds(10));
      if (d.ok() && std::holds_alternative<Message>(*d)) reached[i] = true;
    }
  }
  return false;
}

std::vector<std::string> Payloads(const std::vector<Message>& messages) {
  std::vector<std::string> out;
  for (const Message& m : messages) out.push_back(m.payload);
  return out;
}

bool SeesMembers(Client& c, const std::string& scope, const std::string& group, size_t n) {
  return WaitFor([&] {
    Result<std::vector<MemberId>> m = c.Members(scope, group);
    return m.ok() && m->size() == n;
  });
}

class MessagingTest : public ::testing::Test {
 protected:
  explicit MessagingTest(int n = 3, BrokerOptions o = TestMesh::FastOptions()) : mesh(n, o) {}
  void SetUp() override {
    ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  }
  uint64_t Stat(int i, const std::string& name) { return mesh.broker(i).Stats()[name]; }
  TestMesh mesh;
};

class MessagingFourNodeTest : public MessagingTest {
 protected:
  MessagingFourNodeTest() : MessagingTest(4) {}
};

// ---- publish / subscribe ---------------------------------------------------

TEST_F(MessagingFourNodeTest, PublishReachesInterestedNodesOnceEachAndNoOthers) {
  Client pub = mesh.Connect(0);
  Client s2a = mesh.Connect(1), s2b = mesh.Connect(1), s3 = mesh.Connect(2);
  Client other = mesh.Connect(3);  // n4 subscribes to something else
  for (Client* s : {&s2a, &s2b, &s3}) ASSERT_TRUE(s->Subscribe("orders.").ok());
  ASSERT_TRUE(other.Subscribe("invoices.").ok());
  for (Client* s : {&s2a, &s2b, &s3}) ASSERT_TRUE(AwaitSubscribed(pub, *s, "orders.probe"));
  uint64_t n2_in = Stat(1, "data_messages_in"), n3_in = Stat(2, "data_messages_in");
  uint64_t n1_out = Stat(0, "data_messages_out");

  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(pub.Publish("orders.eu", std::to_string(i)).ok());
  for (Client* s : {&s2a, &s2b, &s3}) {
    Inbox box;
    Collect(*s, &box, [](const Inbox& b) { return b.messages.size() >= kCount; });
    ASSERT_EQ(box.messages.size(), size_t(kCount));
    for (int i = 0; i < kCount; ++i) {
      EXPECT_EQ(box.messages[i].payload, std::to_string(i));
      EXPECT_EQ(box.messages[i].topic, "orders.eu");
      EXPECT_EQ(box.messages[i].kind, MessageKind::kPublish);
      EXPECT_EQ(box.messages[i].from, pub.self());
    }
    EXPECT_EQ(box.lost, 0u);
  }
  // Published once; each interested node took it in once however many
  // subscribers it has (marks, one per topic per heartbeat, come on top).
  EXPECT_EQ(Stat(0, "data_messages_out") - n1_out, uint64_t(kCount));
  uint64_t n2_got = Stat(1, "data_messages_in") - n2_in;
  uint64_t n3_got = Stat(2, "data_messages_in") - n3_in;
  EXPECT_GE(n2_got, uint64_t(kCount));
  EXPECT_LT(n2_got, uint64_t(kCount) + 100) << "n2 took the messages in more than once";
  EXPECT_GE(n3_got, uint64_t(kCount));
  EXPECT_LT(n3_got, uint64_t(kCount) + 100);
  EXPECT_EQ(Stat(3, "data_messages_in"), 0u) << "n4 has no interest in orders.*";
  EXPECT_EQ(Drain(other).messages.size(), 0u);
}

TEST_F(MessagingTest, PrefixSemantics) {
  Client pub = mesh.Connect(0);
  Client wide = mesh.Connect(1), narrow = mesh.Connect(1), overlapping = mesh.Connect(2),
         everything = mesh.Connect(2);
  ASSERT_TRUE(wide.Subscribe("ord").ok());
  ASSERT_TRUE(narrow.Subscribe("orders.eu").ok());
  ASSERT_TRUE(overlapping.Subscribe("orders").ok());
  ASSERT_TRUE(overlapping.Subscribe("orders.eu").ok());
  ASSERT_TRUE(everything.Subscribe("").ok());
  ASSERT_TRUE(AwaitSubscribed(pub, wide, "ord"));
  ASSERT_TRUE(AwaitSubscribed(pub, narrow, "orders.eu"));
  ASSERT_TRUE(AwaitSubscribed(pub, overlapping, "orders.eu"));
  ASSERT_TRUE(AwaitSubscribed(pub, everything, "x"));
  for (const char* t : {"orders.eu", "orders.us", "ordinal", "invoices", "orders.eu.x", "fence"}) {
    ASSERT_TRUE(pub.Publish(t, t).ok());
  }
  auto until_fence = [](Client& c, bool gets_fence) {
    Inbox box;
    if (gets_fence) {
      Collect(c, &box, [](const Inbox& b) {
        return !b.messages.empty() && b.messages.back().payload == "fence";
      });
    } else {
      box = Drain(c, milliseconds(300));
    }
    return Payloads(box.messages);
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(until_fence(everything, true),
            (V{"orders.eu", "orders.us", "ordinal", "invoices", "orders.eu.x", "fence"}));
  // The others have no fence to wait for; `everything` saw the fence, and
  // the others' messages came on the same ordered channels before it.
  EXPECT_EQ(until_fence(wide, false), (V{"orders.eu", "orders.us", "ordinal", "orders.eu.x"}));
  EXPECT_EQ(until_fence(narrow, false), (V{"orders.eu", "orders.eu.x"}));
  // Two matching subscriptions, one delivery each, as a ZeroMQ SUB socket.
  EXPECT_EQ(until_fence(overlapping, false), (V{"orders.eu", "orders.us", "orders.eu.x"}));
}

// Subscribe returns once every peer applies the subscription, so a publish
// made anywhere after it returns is delivered: no probing needed.
TEST_F(MessagingTest, APublishRightAfterSubscribeReturnsIsDelivered) {
  Client pub2 = mesh.Connect(1), pub3 = mesh.Connect(2);
  for (int round = 0; round < 20; ++round) {
    Client sub = mesh.Connect(0);
    std::string topic = "fresh." + std::to_string(round);
    ASSERT_TRUE(sub.Subscribe(topic).ok());
    ASSERT_TRUE(pub2.Publish(topic, "from n2").ok());
    ASSERT_TRUE(pub3.Publish(topic, "from n3").ok());
    Inbox box;
    Collect(sub, &box, [](const Inbox& b) { return b.messages.size() >= 2; });
    ASSERT_EQ(box.messages.size(), 2u) << "round " << round;
  }
  EXPECT_EQ(Stat(0, "subscriptions_unconfirmed"), 0u);
}

TEST_F(MessagingTest, LocalSubscribersGetLocalPublishes) {
  Client pub = mesh.Connect(0), sub = mesh.Connect(0);
  ASSERT_TRUE(sub.Subscribe("t").ok());
  ASSERT_TRUE(pub.Publish("t", "one").ok());
  Inbox box;
  Collect(sub, &box, [](const Inbox& b) { return !b.messages.empty(); });
  ASSERT_EQ(Payloads(box.messages), std::vector<std::string>{"one"});
}

TEST_F(MessagingTest, UnsubscribeStopsDelivery) {
  Client pub = mesh.Connect(0), sub = mesh.Connect(1);
  ASSERT_TRUE(sub.Subscribe("a").ok());
  ASSERT_TRUE(sub.Subscribe("fence").ok());
  ASSERT_TRUE(AwaitSubscribed(pub, sub, "a"));
  ASSERT_TRUE(AwaitSubscribed(pub, sub, "fence"));
  ASSERT_TRUE(pub.Publish("a", "before").ok());
  Inbox box;
  Collect(sub, &box, [](const Inbox& b) { return !b.messages.empty(); });
  ASSERT_EQ(Payloads(box.messages), std::vector<std::string>{"before"});

  ASSERT_TRUE(sub.Unsubscribe("a").ok());
  EXPECT_EQ(sub.Unsubscribe("a").code(), Code::kNotFound);
  EXPECT_EQ(sub.Unsubscribe("never").code(), Code::kNotFound);
  // Until n1 has the unsubscription, it still sends; n2 drops those, as
  // nobody wants them. Either way the subscriber gets nothing of "a".
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(pub.Publish("a", "after").ok());
  ASSERT_TRUE(pub.Publish("fence", "fence").ok());
  box = Inbox{};
  Collect(sub, &box, [](const Inbox& b) { return !b.messages.empty(); });
  EXPECT_EQ(Payloads(box.messages), std::vector<std::string>{"fence"});
  EXPECT_EQ(box.lost, 0u) << "messages nobody wants are no loss";
}

// ---- broadcast -------------------------------------------------------------

TEST_F(MessagingTest, BroadcastReachesEveryMemberOnceOnEveryNode) {
  Client sender = mesh.Connect(0);
  Client m1 = mesh.Connect(0), m2 = mesh.Connect(1), m3a = mesh.Connect(2), m3b = mesh.Connect(2);
  Client outsider = mesh.Connect(1);
  ASSERT_TRUE(m1.Join("app", "all").ok());
  ASSERT_TRUE(m1.Join("app", "all").ok());  // twice: still one delivery
  for (Client* m : {&m2, &m3a, &m3b}) ASSERT_TRUE(m->Join("app", "all").ok());
  ASSERT_TRUE(outsider.Join("app", "all2").ok());  // a group whose name extends "all"
  ASSERT_TRUE(SeesMembers(sender, "app", "all", 5));
  ASSERT_TRUE(AwaitBroadcastReach(sender, {&m1, &m2, &m3a, &m3b}, "app", "all"));

  ASSERT_TRUE(sender.Broadcast("app", "all", "hello").ok());
  ASSERT_TRUE(sender.Broadcast("app", "all", "fence").ok());
  for (Client* m : {&m1, &m2, &m3a, &m3b}) {
    Inbox box;
    Collect(*m, &box, [](const Inbox& b) {
      return !b.messages.empty() && b.messages.back().payload == "fence";
    });
    EXPECT_EQ(Payloads(box.messages), (std::vector<std::string>{"hello", "fence"}));
    EXPECT_EQ(box.messages[0].kind, MessageKind::kBroadcast);
    EXPECT_EQ(box.messages[0].group, "all");
    EXPECT_EQ(box.messages[0].from, sender.self());
  }
  EXPECT_EQ(Drain(outsider).messages.size(), 0u);
  // A broadcast to an empty group reaches nobody and is no error.
  EXPECT_TRUE(sender.Broadcast("app", "nobody", "x").ok());
}

// ---- dispatch --------------------------------------------------------------

TEST_F(MessagingTest, DispatchSpreadsUniformlyOverTheMesh) {
  Client sender = mesh.Connect(0);
  Client w1 = mesh.Connect(0), w2 = mesh.Connect(1), w3 = mesh.Connect(2);
  for (Client* w : {&w1, &w2, &w3}) ASSERT_TRUE(w->Join("jobs", "workers").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "workers", 3));

  constexpr int kCount = 1500;
  std::map<std::string, int> chosen;
  int in_flight = 0, sent = 0, done = 0;
  auto deadline = Clock::now() + milliseconds(20000);
  while (done < kCount && Clock::now() < deadline) {
    while (sent < kCount && in_flight < 100) {
      ASSERT_TRUE(sender.DispatchAsync("jobs", "workers", std::to_string(sent)).ok());
      ++sent;
      ++in_flight;
    }
    Result<Delivery> d = sender.Receive(milliseconds(100));
    if (!d.ok()) continue;
    auto* o = std::get_if<Outcome>(&*d);
    ASSERT_NE(o, nullptr);
    ASSERT_TRUE(o->status.ok()) << o->status.ToString();
    ++chosen[o->member.ToString()];
    --in_flight;
    ++done;
  }
  ASSERT_EQ(done, kCount);
  // Each worker got exactly what the outcomes said, in the order sent.
  for (Client* w : {&w1, &w2, &w3}) {
    Inbox box;
    int want = chosen[w->self().ToString()];
    Collect(*w, &box, [&](const Inbox& b) { return int(b.messages.size()) >= want; });
    ASSERT_EQ(int(box.messages.size()), want);
    for (size_t i = 1; i < box.messages.size(); ++i) {
      EXPECT_LT(std::stoi(box.messages[i - 1].payload), std::stoi(box.messages[i].payload));
    }
    EXPECT_EQ(box.messages[0].kind, MessageKind::kDispatch);
  }
  // Chi-square with 2 degrees of freedom: above 13.8 has odds of 1 in 1000.
  double expected = kCount / 3.0, chi2 = 0;
  for (Client* w : {&w1, &w2, &w3}) {
    double d = chosen[w->self().ToString()] - expected;
    chi2 += d * d / expected;
  }
  EXPECT_LT(chi2, 13.8) << chosen[w1.self().ToString()] << " " << chosen[w2.self().ToString()]
                        << " " << chosen[w3.self().ToString()];
}

TEST_F(MessagingTest, DispatchToLocalMembersNeverTouchesTheNetwork) {
  Client sender = mesh.Connect(0);
  Client w1 = mesh.Connect(0), w2 = mesh.Connect(0);
  ASSERT_TRUE(w1.Join("jobs", "local").ok());
  ASSERT_TRUE(w2.Join("jobs", "local").ok());
  uint64_t out = Stat(0, "forwards_sent"), data = Stat(0, "data_messages_out");
  uint64_t in2 = Stat(1, "forwards_received"), in3 = Stat(2, "forwards_received");
  for (int i = 0; i < 50; ++i) {
    Result<MemberId> m = sender.Dispatch("jobs", "local", "x");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->node, "n1");
  }
  EXPECT_EQ(Stat(0, "forwards_sent"), out);
  EXPECT_EQ(Stat(0, "data_messages_out"), data);
  EXPECT_EQ(Stat(1, "forwards_received"), in2);
  EXPECT_EQ(Stat(2, "forwards_received"), in3);
  EXPECT_EQ(Drain(w1).messages.size() + Drain(w2).messages.size(), 50u);
}

TEST_F(MessagingTest, DispatchWithNoMembersFailsAtOnce) {
  Client sender = mesh.Connect(0);
  auto start = Clock::now();
  Result<MemberId> m = sender.Dispatch("jobs", "nobody", "x");
  EXPECT_EQ(m.status().code(), Code::kNoMembers) << m.status().ToString();
  Result<Message> r = sender.Request("jobs", "nobody", "x", milliseconds(2000));
  EXPECT_EQ(r.status().code(), Code::kNoResponders) << r.status().ToString();
  EXPECT_LT(Clock::now() - start, milliseconds(500));
}

TEST_F(MessagingTest, DispatchGoesElsewhereWhenTheChosenMembersNodeIsCutOff) {
  Client sender = mesh.Connect(0);
  Client w2 = mesh.Connect(1), w3 = mesh.Connect(2);
  ASSERT_TRUE(w2.Join("jobs", "w").ok());
  ASSERT_TRUE(w3.Join("jobs", "w").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "w", 2));
  // n1 can no longer send to n3, but still lists its member: every dispatch
  // that picks w3 is sent to w2 instead.
  mesh.broker(0).SetBlockedPeers({"n3"});
  for (int i = 0; i < 30; ++i) {
    Result<MemberId> m = sender.Dispatch("jobs", "w", "x");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(*m, w2.self());
  }
  EXPECT_GT(Stat(0, "redispatches"), 0u);
  mesh.Heal();
}

// A member's node killed with dispatches and requests in flight: each one
// has an outcome; a request the dead member held fails with an error, one it
// never got goes to the other member; none is left without an answer.
TEST_F(MessagingTest, NothingInFlightVanishesWhenAMembersNodeDies) {
  Client sender = mesh.Connect(0);
  Client w2 = mesh.Connect(1), w3 = mesh.Connect(2);
  ASSERT_TRUE(w2.Join("svc", "echo").ok());
  ASSERT_TRUE(w3.Join("svc", "echo").ok());
  ASSERT_TRUE(SeesMembers(sender, "svc", "echo", 2));

  constexpr int kRequests = 200, kDispatches = 200;
  std::set<uint64_t> tickets;
  for (int i = 0; i < kRequests; ++i) {
    Result<uint64_t> t = sender.RequestAsync("svc", "echo", std::to_string(i), milliseconds(8000));
    ASSERT_TRUE(t.ok());
    tickets.insert(*t);
  }
  for (int i = 0; i < kDispatches; ++i) {
    Result<uint64_t> t = sender.DispatchAsync("svc", "echo", "d");
    ASSERT_TRUE(t.ok());
    tickets.insert(*t);
  }
  // w2 answers what it gets; w3's node dies without answering.
  mesh.Stop(2, /*graceful=*/false);
  std::map<Code, int> outcomes;
  auto deadline = Clock::now() + milliseconds(7000);
  while (!tickets.empty() && Clock::now() < deadline) {
    Result<Delivery> d = w2.Receive(milliseconds(5));
    if (d.ok()) {
      if (auto* m = std::get_if<Message>(&*d); m && m->kind == MessageKind::kRequest) {
        ASSERT_TRUE(w2.Reply(*m, m->payload).ok());
      }
    }
    Result<Delivery> o = sender.Receive(milliseconds(5));
    if (!o.ok()) continue;
    if (auto* out = std::get_if<Outcome>(&*o)) {
      ASSERT_EQ(tickets.erase(out->ticket), 1u) << "an outcome twice, or for nothing";
      ++outcomes[out->status.code()];
      if (!out->status.ok()) {
        EXPECT_EQ(out->status.code(), Code::kUnavailable) << out->status.ToString();
      }
    }
  }
  EXPECT_TRUE(tickets.empty()) << tickets.size() << " calls never had an outcome";
  EXPECT_GT(outcomes[Code::kOk], 0);
  EXPECT_EQ(outcomes[Code::kTimeout], 0) << "a dead member is found before the timeout";
}

// ---- request / reply -------------------------------------------------------

TEST_F(MessagingTest, RequestGetsTheReplyOfAMemberOnAnotherNode) {
  Client requester = mesh.Connect(0), responder = mesh.Connect(2);
  ASSERT_TRUE(responder.Join("svc", "upper").ok());
  ASSERT_TRUE(SeesMembers(requester, "svc", "upper", 1));
  std::thread serve([&] {
    for (int handled = 0; handled < 3;) {
      Result<Delivery> d = responder.Receive(milliseconds(3000));
      if (!d.ok()) return;
      auto* m = std::get_if<Message>(&*d);
      if (m == nullptr || m->kind != MessageKind::kRequest) continue;
      std::string up = m->payload;
      std::transform(up.begin(), up.end(), up.begin(), ::toupper);
      EXPECT_TRUE(responder.Reply(*m, up).ok());
      // Answering twice is an error: the request has its answer.
      EXPECT_EQ(responder.Reply(*m, "again").code(), Code::kNotFound);
      ++handled;
    }
  });
  for (const std::string& word :
       {std::string("abc"), std::string("hello"), std::string(70000, 'x')}) {
    Result<Message> r = requester.Request("svc", "upper", word, milliseconds(3000));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::string want = word;
    std::transform(want.begin(), want.end(), want.begin(), ::toupper);
    EXPECT_TRUE(r->payload == want)
        << r->payload.size() << " bytes, not the " << want.size() << " expected";
    EXPECT_EQ(r->from, responder.self());
  }
  serve.join();
}

TEST_F(MessagingTest, ManyRequestsInFlightAnsweredWithoutWaiting) {
  Client requester = mesh.Connect(0), responder = mesh.Connect(1);
  ASSERT_TRUE(responder.Join("svc", "fast").ok());
  ASSERT_TRUE(SeesMembers(requester, "svc", "fast", 1));
  constexpr int kCount = 500;
  std::map<uint64_t, std::string> sent;
  for (int i = 0; i < kCount; ++i) {
    Result<uint64_t> t =
        requester.RequestAsync("svc", "fast", std::to_string(i), milliseconds(5000));
    ASSERT_TRUE(t.ok());
    sent[*t] = std::to_string(i);
  }
  Inbox served;
  Collect(responder, &served, [&](const Inbox& b) { return b.messages.size() >= kCount; });
  ASSERT_EQ(served.messages.size(), size_t(kCount));
  for (const Message& m : served.messages)
    ASSERT_TRUE(responder.ReplyAsync(m, "re:" + m.payload).ok());
  // Answering one twice: the refusal comes as an Outcome with ticket 0.
  ASSERT_TRUE(responder.ReplyAsync(served.messages[0], "again").ok());
  Inbox box;
  Collect(requester, &box, [&](const Inbox& b) { return b.outcomes.size() >= kCount; });
  ASSERT_EQ(box.outcomes.size(), size_t(kCount));
  for (const Outcome& o : box.outcomes) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    EXPECT_EQ(o.payload, "re:" + sent.at(o.ticket));
    EXPECT_EQ(o.member, responder.self());
  }
  Inbox refusal;
  Collect(responder, &refusal, [](const Inbox& b) { return !b.outcomes.empty(); });
  ASSERT_EQ(refusal.outcomes.size(), 1u);
  EXPECT_EQ(refusal.outcomes[0].ticket, 0u);
  EXPECT_EQ(refusal.outcomes[0].status.code(), Code::kNotFound);
}

TEST_F(MessagingTest, RequestTimesOutWhenTheResponderIsSilent) {
  Client requester = mesh.Connect(0), silent = mesh.Connect(1);
  ASSERT_TRUE(silent.Join("svc", "silent").ok());
  ASSERT_TRUE(SeesMembers(requester, "svc", "silent", 1));
  auto start = Clock::now();
  Result<Message> r = requester.Request("svc", "silent", "x", milliseconds(300));
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().ToString();
  EXPECT_GE(Clock::now() - start, milliseconds(300));
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  // The late answer is refused, and the requester's next call is not confused by it.
  Inbox box = Drain(silent);
  ASSERT_EQ(box.messages.size(), 1u);
  EXPECT_EQ(silent.Reply(box.messages[0], "late").code(), Code::kNotFound);
  EXPECT_TRUE(requester.Members("svc", "silent").ok());
  EXPECT_EQ(Stat(0, "request_timeouts"), 1u);
}

TEST_F(MessagingTest, ARequestHeldByAMemberThatLeavesFailsAtOnce) {
  Client requester = mesh.Connect(0);
  ClientOptions o;
  o.endpoint = "ipc://" + mesh.client_endpoint(1);
  Result<Client> responder = Client::Connect(o);
  ASSERT_TRUE(responder.ok());
  ASSERT_TRUE(responder->Join("svc", "quitter").ok());
  ASSERT_TRUE(SeesMembers(requester, "svc", "quitter", 1));
  ASSERT_TRUE(requester.RequestAsync("svc", "quitter", "x", milliseconds(10000)).ok());
  Inbox held;
  Collect(*responder, &held, [](const Inbox& b) { return !b.messages.empty(); });
  ASSERT_EQ(held.messages.size(), 1u);
  auto start = Clock::now();
  ASSERT_TRUE(responder->Close().ok());
  Inbox box;
  Collect(requester, &box, [](const Inbox& b) { return !b.outcomes.empty(); });
  ASSERT_EQ(box.outcomes.size(), 1u);
  EXPECT_EQ(box.outcomes[0].status.code(), Code::kUnavailable) << box.outcomes[0].status.ToString();
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
}

// A requester that ends takes its calls awaiting an outcome with it, and
// only its own: nobody is left to tell.
TEST_F(MessagingTest, ARequesterThatEndsTakesOnlyItsOwnPendingCallsWithIt) {
  Client leaver = mesh.Connect(0), stayer = mesh.Connect(0), responder = mesh.Connect(1);
  ASSERT_TRUE(responder.Join("svc", "silent").ok());
  ASSERT_TRUE(SeesMembers(leaver, "svc", "silent", 1));
  const uint64_t before = Stat(0, "pending_outcomes");
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(leaver.RequestAsync("svc", "silent", "x", milliseconds(30000)).ok());
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(stayer.RequestAsync("svc", "silent", "y", milliseconds(30000)).ok());
  }
  EXPECT_TRUE(WaitFor([&] { return Stat(0, "pending_outcomes") == before + 25; }))
      << Stat(0, "pending_outcomes") - before;
  ASSERT_TRUE(leaver.Close().ok());
  EXPECT_TRUE(WaitFor([&] { return Stat(0, "pending_outcomes") == before + 5; }))
      << Stat(0, "pending_outcomes") - before;
  // The other requester's calls still have their outcome: the responder's end.
  ASSERT_TRUE(responder.Close().ok());
  Inbox box;
  Collect(stayer, &box, [](const Inbox& b) { return b.outcomes.size() >= 5; });
  ASSERT_EQ(box.outcomes.size(), 5u);
  for (const Outcome& o : box.outcomes) EXPECT_EQ(o.status.code(), Code::kUnavailable);
  EXPECT_EQ(Stat(0, "pending_outcomes"), before);
}

// ---- direct sends ----------------------------------------------------------

TEST_F(MessagingTest, SendReachesOneMemberByIdInOrder) {
  Client sender = mesh.Connect(0), target = mesh.Connect(2);
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  for (int i = 0; i < 100; ++i) {
    Status s = sender.Send(target.self(), std::to_string(i));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  Inbox box;
  Collect(target, &box, [](const Inbox& b) { return b.messages.size() >= 100; });
  ASSERT_EQ(box.messages.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(box.messages[i].payload, std::to_string(i));
  EXPECT_EQ(box.messages[0].kind, MessageKind::kDirect);
  EXPECT_EQ(box.messages[0].from, sender.self());

  MemberId gone = target.self();
  ASSERT_TRUE(target.Close().ok());
  EXPECT_EQ(sender.Send(gone, "x").code(), Code::kNotFound);
  MemberId nowhere{"n9", 1, 1};
  EXPECT_EQ(sender.Send(nowhere, "x").code(), Code::kNotFound);
  EXPECT_EQ(sender.Send(MemberId{"", 1, 1}, "x").code(), Code::kInvalidArgument);
}

// ---- loss is never silent --------------------------------------------------

TEST_F(MessagingTest, LostDataBetweenBrokersIsReportedToTheSubscriber) {
  Client pub = mesh.Connect(0), sub = mesh.Connect(1);
  ASSERT_TRUE(sub.Subscribe("t").ok());
  ASSERT_TRUE(AwaitSubscribed(pub, sub, "t"));
  // Numbered and never sent: three in the middle of the stream...
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pub.Publish("t", "a" + std::to_string(i)).ok());
  mesh.broker(0).DropNextData(3);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(pub.Publish("t", "b" + std::to_string(i)).ok());
  Inbox box;
  Collect(sub, &box, [](const Inbox& b) { return b.messages.size() >= 10; });
  EXPECT_EQ(box.messages.size(), 10u);
  EXPECT_EQ(box.lost, 3u);
  EXPECT_EQ(Stat(1, "data_messages_lost"), 3u);
  // ...and two at its end, with nothing after them: the origin's marks tell.
  mesh.broker(0).DropNextData(2);
  ASSERT_TRUE(pub.Publish("t", "c0").ok());
  ASSERT_TRUE(pub.Publish("t", "c1").ok());
  box = Inbox{};
  Collect(sub, &box, [](const Inbox& b) { return b.lost >= 2; });
  EXPECT_EQ(box.lost, 2u);
  EXPECT_EQ(box.messages.size(), 0u);
  EXPECT_EQ(Stat(1, "data_messages_lost"), 5u);
  EXPECT_EQ(Stat(1, "data_gaps"), 2u);
}

// Publishes that reach a broker in one turn go to each peer as one ZeroMQ
// message per topic: two publishers interleaved on one topic and a third
// topic between them, each message in order and from its own sender.
TEST_F(MessagingTest, ABurstTravelsInBatchesAndArrivesWholeInOrderFromItsSenders) {
  Client a = mesh.Connect(0), b = mesh.Connect(0), sub = mesh.Connect(2);
  ASSERT_TRUE(sub.Subscribe("burst.").ok());
  ASSERT_TRUE(AwaitSubscribed(a, sub, "burst.probe"));
  ASSERT_TRUE(AwaitSubscribed(b, sub, "burst.probe"));
  uint64_t messages = Stat(0, "data_messages_out"), batches = Stat(0, "data_batches_out");
  uint64_t to_client = Stat(2, "client_batches_out");
  constexpr int kCount = 2000;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(a.Publish("burst.x", "a" + std::to_string(i)).ok());
    ASSERT_TRUE(b.Publish(i % 100 == 0 ? "burst.y" : "burst.x", "b" + std::to_string(i)).ok());
  }
  Inbox box;
  Collect(sub, &box, [](const Inbox& b) { return b.messages.size() >= 2 * kCount; });
  ASSERT_EQ(box.messages.size(), size_t(2 * kCount));
  EXPECT_EQ(box.lost, 0u);
  std::map<std::string, int> next;  // per sender, the number it sends next
  for (const Message& m : box.messages) {
    char sender = m.payload[0];
    ASSERT_EQ(m.from, sender == 'a' ? a.self() : b.self()) << m.payload;
    int n = std::stoi(m.payload.substr(1));
    EXPECT_EQ(n, next[std::string(1, sender)]++) << "out of order: " << m.payload;
    EXPECT_EQ(m.topic, sender == 'b' && n % 100 == 0 ? "burst.y" : "burst.x") << m.payload;
  }
  EXPECT_EQ(Stat(0, "data_messages_out") - messages, uint64_t(2 * kCount));
  EXPECT_LT(Stat(0, "data_batches_out") - batches, uint64_t(2 * kCount))
      << "every publish went as a ZeroMQ message of its own";
  EXPECT_GT(Stat(2, "client_batches_out"), to_client) << "n3 handed them over one by one";
  EXPECT_EQ(Stat(2, "data_messages_lost"), 0u);
}

// A burst of dispatches from two senders travels in call batches and runs
// (forwards that share a header), forwards one way and acks the other, and
// still every dispatch has its outcome, naming the member that has it, and
// reaches it once, in each sender's order.
TEST_F(MessagingTest, ABurstOfDispatchesTravelsInCallBatchesAndRuns) {
  Client a = mesh.Connect(0), b = mesh.Connect(0), member = mesh.Connect(1);
  ASSERT_TRUE(member.Join("jobs", "w").ok());
  ASSERT_TRUE(SeesMembers(a, "jobs", "w", 1));
  auto shared = [&](int node) {  // ZeroMQ messages that carried several calls
    return Stat(node, "call_batches_out") + Stat(node, "call_runs_out");
  };
  const uint64_t forwards = shared(0), acks = shared(1);
  const uint64_t batches_in = Stat(1, "call_batches_in"), runs_in = Stat(1, "call_runs_in");
  constexpr size_t kCount = 1000;  // from each sender
  std::set<uint64_t> tickets_a, tickets_b;
  for (size_t i = 0; i < kCount; ++i) {
    for (auto [c, tickets, name] : {std::tuple{&a, &tickets_a, "a"}, {&b, &tickets_b, "b"}}) {
      Result<uint64_t> t = c->DispatchAsync("jobs", "w", name + std::to_string(i));
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      tickets->insert(*t);
    }
  }
  for (auto [c, tickets] : {std::pair{&a, &tickets_a}, {&b, &tickets_b}}) {
    Inbox outcomes;
    Collect(*c, &outcomes, [](const Inbox& box) { return box.outcomes.size() >= kCount; });
    ASSERT_EQ(outcomes.outcomes.size(), kCount);
    for (const Outcome& o : outcomes.outcomes) {
      EXPECT_TRUE(o.status.ok()) << o.status.ToString();
      EXPECT_EQ(o.member, member.self());
      EXPECT_EQ(tickets->erase(o.ticket), 1u) << "an outcome for no dispatch, or twice";
    }
  }
  Inbox got;
  Collect(member, &got, [](const Inbox& box) { return box.messages.size() >= 2 * kCount; });
  ASSERT_EQ(got.messages.size(), 2 * kCount);
  std::map<MemberId, size_t> next;  // per sender, the number it sent next
  for (const Message& m : got.messages) {
    const std::string name = m.from == a.self() ? "a" : "b";
    EXPECT_EQ(m.payload, name + std::to_string(next[m.from]++)) << "out of order";
    EXPECT_EQ(m.kind, MessageKind::kDispatch);
  }
  EXPECT_GT(shared(0), forwards) << "every forward went on its own";
  EXPECT_GT(shared(1), acks) << "every ack went on its own";
  EXPECT_EQ(Stat(1, "call_batches_in") - batches_in + Stat(1, "call_runs_in") - runs_in,
            shared(0) - forwards);
}

// A call batch that fills up and cannot be sent fails exactly the forwards
// it held, and the broker goes on with the next batch. (The batch is sent
// before the call that finds it full joins the next: flushing after it,
// the failure rerouted the very call whose routing was still under way.)
TEST_F(MessagingTest, AFullCallBatchThatCannotBeSentFailsExactlyItsForwards) {
  Client sender = mesh.Connect(0), member = mesh.Connect(2);
  ASSERT_TRUE(member.Join("jobs", "one").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "one", 1));
  constexpr size_t kBatch = 256, kCount = kBatch + 44;  // wire::kMaxMessageBatch calls
  std::vector<std::string> payloads;
  for (size_t i = 0; i < kCount; ++i) payloads.push_back("d" + std::to_string(i));
  mesh.broker(0).FailNextCallSends(1);
  Result<std::vector<Result<MemberId>>> got = sender.DispatchMany("jobs", "one", payloads);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), kCount);
  for (size_t i = 0; i < kCount; ++i) {
    const Result<MemberId>& r = (*got)[i];
    if (i < kBatch) {
      EXPECT_EQ(r.status().code(), Code::kUnavailable) << i << ": " << r.status().ToString();
    } else {
      ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
      EXPECT_EQ(*r, member.self());
    }
  }
  Inbox box;
  Collect(member, &box, [&](const Inbox& b) { return b.messages.size() >= kCount - kBatch; });
  EXPECT_EQ(Payloads(box.messages),
            std::vector<std::string>(payloads.begin() + kBatch, payloads.end()));
  EXPECT_EQ(Drain(member).messages.size(), 0u);
}

// A forward whose call batch cannot be sent goes to another member, as one
// its node refused would; with no other member, the dispatch says so.
TEST_F(MessagingTest, AForwardWhoseBatchCannotBeSentGoesElsewhere) {
  Client sender = mesh.Connect(0), m2 = mesh.Connect(1), m3 = mesh.Connect(2);
  for (Client* m : {&m2, &m3}) ASSERT_TRUE(m->Join("jobs", "two").ok());
  ASSERT_TRUE(m3.Join("jobs", "one").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "two", 2));
  ASSERT_TRUE(SeesMembers(sender, "jobs", "one", 1));
  const uint64_t redispatches = Stat(0, "redispatches"), failed = Stat(0, "peer_sends_failed");
  mesh.broker(0).FailNextCallSends(1);
  Result<MemberId> got = sender.Dispatch("jobs", "two", "x");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Stat(0, "redispatches") - redispatches, 1u);
  EXPECT_EQ(Stat(0, "peer_sends_failed") - failed, 1u);
  Client& holder = *got == m2.self() ? m2 : m3;
  ASSERT_EQ(*got, holder.self());
  Inbox box;
  Collect(holder, &box, [](const Inbox& b) { return !b.messages.empty(); });
  EXPECT_EQ(Payloads(box.messages), std::vector<std::string>{"x"});

  mesh.broker(0).FailNextCallSends(1);
  Result<MemberId> none = sender.Dispatch("jobs", "one", "y");
  EXPECT_EQ(none.status().code(), Code::kUnavailable) << none.status().ToString();
  EXPECT_NE(none.status().message().find("cannot reach n3"), std::string::npos)
      << none.status().ToString();
  // A direct send has nobody else to go to: it fails, it is never "delivered".
  mesh.broker(0).FailNextCallSends(1);
  Status direct = sender.Send(m3.self(), "z");
  EXPECT_EQ(direct.code(), Code::kUnavailable) << direct.ToString();
  EXPECT_EQ(Drain(m3).messages.size(), 0u) << "a lost forward was delivered after all";
  ASSERT_TRUE(sender.Send(m3.self(), "after").ok());  // and the link still serves
  Inbox after;
  Collect(m3, &after, [](const Inbox& b) { return !b.messages.empty(); });
  EXPECT_EQ(Payloads(after.messages), std::vector<std::string>{"after"});
}

// DispatchMany: every payload its own dispatch, to members here and on
// other nodes, each reaching one member once, in order, and its outcome
// naming that member; the broker takes them kMaxCastPayloads a request.
TEST_F(MessagingTest, DispatchManyDispatchesEachPayloadOnceAndSaysWhoHasIt) {
  Client sender = mesh.Connect(0);
  Client w1 = mesh.Connect(0), w2 = mesh.Connect(1), w3 = mesh.Connect(2);
  for (Client* w : {&w1, &w2, &w3}) ASSERT_TRUE(w->Join("jobs", "w").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "w", 3));
  constexpr size_t kCount = 1000;  // four requests' worth
  std::vector<std::string> payloads;
  for (size_t i = 0; i < kCount; ++i) payloads.push_back("d" + std::to_string(i));
  const uint64_t requests = Stat(0, "client_messages_in"), in = Stat(0, "dispatches_in");
  const uint64_t forwards = Stat(0, "forwards_sent"), runs = Stat(0, "call_runs_out");
  const uint64_t ack_runs = Stat(1, "call_runs_out") + Stat(2, "call_runs_out");
  const uint64_t runs_in = Stat(1, "call_runs_in") + Stat(2, "call_runs_in");
  const uint64_t ack_runs_in = Stat(0, "call_runs_in");

  Result<std::vector<Result<MemberId>>> got = sender.DispatchMany("jobs", "w", payloads);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), kCount);
  std::map<std::string, std::vector<std::string>> expected;  // by member
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE((*got)[i].ok()) << i << ": " << (*got)[i].status().ToString();
    expected[(*got)[i]->ToString()].push_back(payloads[i]);
  }
  EXPECT_EQ(Stat(0, "dispatches_in") - in, kCount);
  EXPECT_LT(Stat(0, "client_messages_in") - requests, 40u)
      << "the payloads went to the broker one request each";
  size_t members_used = 0;
  for (Client* w : {&w1, &w2, &w3}) {
    const std::vector<std::string>& want = expected[w->self().ToString()];
    members_used += !want.empty();
    Inbox box;
    Collect(*w, &box, [&](const Inbox& b) { return b.messages.size() >= want.size(); });
    EXPECT_EQ(Payloads(box.messages), want) << "not what its outcomes said, or not in order";
    for (const Message& m : box.messages) {
      EXPECT_EQ(m.kind, MessageKind::kDispatch);
      EXPECT_EQ(m.from, sender.self());
    }
    EXPECT_EQ(Drain(*w).messages.size(), 0u) << "a payload reached a member twice";
  }
  EXPECT_EQ(members_used, 3u) << "the payloads were not spread";
  // The forwards to a node went under a few headers, and their acks too.
  const uint64_t forwarded = Stat(0, "forwards_sent") - forwards;
  EXPECT_EQ(forwarded, kCount - expected[w1.self().ToString()].size());
  const uint64_t sent_runs = Stat(0, "call_runs_out") - runs;
  EXPECT_GT(sent_runs, 0u);
  EXPECT_LE(sent_runs * 8, forwarded) << "forwards that share a header went one by one";
  EXPECT_EQ(Stat(1, "call_runs_in") + Stat(2, "call_runs_in") - runs_in, sent_runs);
  const uint64_t sent_ack_runs = Stat(1, "call_runs_out") + Stat(2, "call_runs_out") - ack_runs;
  EXPECT_GT(sent_ack_runs, 0u);
  EXPECT_LE(sent_ack_runs * 8, forwarded) << "acks went one by one";
  EXPECT_EQ(Stat(0, "call_runs_in") - ack_runs_in, sent_ack_runs);
}

TEST_F(MessagingTest, DispatchManyToAnEmptyGroupFailsEachPayload) {
  Client sender = mesh.Connect(0);
  const std::vector<std::string> payloads(300, "x");
  Result<std::vector<Result<MemberId>>> got = sender.DispatchMany("jobs", "nobody", payloads);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), payloads.size());
  for (const Result<MemberId>& r : *got) EXPECT_EQ(r.status().code(), Code::kNoMembers);
  Result<std::vector<Result<MemberId>>> none =
      sender.DispatchMany("jobs", "nobody", std::vector<std::string>{});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// The pipelined form: one Outcome with every payload's result.
TEST_F(MessagingTest, DispatchManyAsyncHasAnOutcomePerPayload) {
  Client sender = mesh.Connect(0), member = mesh.Connect(1);
  ASSERT_TRUE(member.Join("jobs", "w").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "w", 1));
  const std::vector<std::string_view> payloads = {"a", "b", "c"};
  Result<uint64_t> ticket = sender.DispatchManyAsync("jobs", "w", payloads);
  ASSERT_TRUE(ticket.ok()) << ticket.status().ToString();
  Result<uint64_t> empty = sender.DispatchManyAsync("jobs", "nobody", payloads);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  Inbox box;
  Collect(sender, &box, [](const Inbox& b) { return b.outcomes.size() >= 2; });
  ASSERT_EQ(box.outcomes.size(), 2u);
  for (const Outcome& o : box.outcomes) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    ASSERT_EQ(o.dispatched.size(), payloads.size());
    for (const Result<MemberId>& r : o.dispatched) {
      if (o.ticket == *ticket) {
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        EXPECT_EQ(*r, member.self());
      } else {
        EXPECT_EQ(o.ticket, *empty);
        EXPECT_EQ(r.status().code(), Code::kNoMembers);
      }
    }
  }
  Inbox got;
  Collect(member, &got, [](const Inbox& b) { return b.messages.size() >= 3; });
  EXPECT_EQ(Payloads(got.messages), (std::vector<std::string>{"a", "b", "c"}));
  // One request's worth at most, and at least one payload.
  EXPECT_EQ(sender.DispatchManyAsync("jobs", "w", {}).status().code(), Code::kInvalidArgument);
  std::vector<std::string_view> too_many(wire::kMaxCastPayloads + 1, "x");
  EXPECT_EQ(sender.DispatchManyAsync("jobs", "w", too_many).status().code(),
            Code::kInvalidArgument);
}

// A dispatch is confirmed only once the batch that carries it to its member
// is handed to ZeroMQ. A batch that cannot be (the member's queue is full)
// sends its dispatches to other members, from a sender here or on another
// node, and none is counted as lost to the member that never got it.
TEST_F(MessagingTest, ADispatchWhoseDeliveryCannotBeHandedOverGoesToAnotherMember) {
  Client sender = mesh.Connect(0);
  Client a1 = mesh.Connect(0), a2 = mesh.Connect(0);  // on the sender's node
  Client b1 = mesh.Connect(1), b2 = mesh.Connect(1);  // on another
  for (Client* m : {&a1, &a2}) ASSERT_TRUE(m->Join("jobs", "here").ok());
  for (Client* m : {&b1, &b2}) ASSERT_TRUE(m->Join("jobs", "there").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "there", 2));
  struct Case {
    int broker;
    std::string group;
    Client *first, *second;
  };
  for (const Case& c : {Case{0, "here", &a1, &a2}, Case{1, "there", &b1, &b2}}) {
    SCOPED_TRACE(c.group);
    const uint64_t redispatches = Stat(0, "redispatches");
    const uint64_t lost = Stat(c.broker, "client_deliveries_lost");
    mesh.broker(c.broker).FailNextDeliveryFlushes(1);
    Result<MemberId> got = sender.Dispatch("jobs", c.group, "x");
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(Stat(0, "redispatches") - redispatches, 1u) << "the failed batch was not retried";
    EXPECT_EQ(Stat(c.broker, "client_deliveries_lost"), lost);
    Client& holder = *got == c.first->self() ? *c.first : *c.second;
    Client& other = &holder == c.first ? *c.second : *c.first;
    EXPECT_EQ(*got, holder.self());
    Inbox box;
    Collect(holder, &box, [](const Inbox& b) { return !b.messages.empty(); });
    EXPECT_EQ(Payloads(box.messages), std::vector<std::string>{"x"});
    Inbox nothing = Drain(other);
    EXPECT_EQ(nothing.messages.size(), 0u);
    EXPECT_EQ(nothing.gaps, 0u) << "a dispatch that went elsewhere was reported lost";
  }
  // With nobody else to take it, the dispatch fails and says why.
  ASSERT_TRUE(a1.Join("jobs", "one").ok());
  mesh.broker(0).FailNextDeliveryFlushes(1);
  Result<MemberId> none = sender.Dispatch("jobs", "one", "y");
  EXPECT_EQ(none.status().code(), Code::kUnavailable) << none.status().ToString();
  EXPECT_NE(none.status().message().find("is full"), std::string::npos) << none.status().ToString();
  Inbox nothing = Drain(a1);
  EXPECT_EQ(nothing.messages.size() + nothing.gaps, 0u);
}

// A DispatchMany's payloads stay in its request's frame until each has an
// outcome. Those that go to another member, after the batch to their first
// could not be sent, carry their own bytes, from a member here and from one
// on another node (rerouted turns later, when the ack comes back), also
// when the frame is small enough to live inside its ZeroMQ message.
TEST_F(MessagingTest, ADispatchManyPayloadRoutedAgainCarriesItsOwnBytes) {
  Client sender = mesh.Connect(0);
  Client a1 = mesh.Connect(0), a2 = mesh.Connect(0);
  Client b1 = mesh.Connect(1), b2 = mesh.Connect(1);
  for (Client* m : {&a1, &a2}) ASSERT_TRUE(m->Join("jobs", "here").ok());
  for (Client* m : {&b1, &b2}) ASSERT_TRUE(m->Join("jobs", "there").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "there", 2));
  struct Case {
    int broker;
    std::string group;
    Client *first, *second;
  };
  for (const Case& c : {Case{0, "here", &a1, &a2}, Case{1, "there", &b1, &b2}}) {
    for (size_t n : {2, 200}) {  // a frame of 14 bytes, and one of 1.7 KB
      SCOPED_TRACE(c.group + ", " + std::to_string(n) + " payloads");
      std::vector<std::string> payloads;
      for (size_t i = 0; i < n; ++i) payloads.push_back(c.group.substr(0, 1) + std::to_string(i));
      const uint64_t redispatches = Stat(0, "redispatches");
      mesh.broker(c.broker).FailNextDeliveryFlushes(1);
      Result<std::vector<Result<MemberId>>> got = sender.DispatchMany("jobs", c.group, payloads);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_EQ(got->size(), n);
      std::map<std::string, std::vector<std::string>> expected;  // by member
      for (size_t i = 0; i < n; ++i) {
        ASSERT_TRUE((*got)[i].ok()) << i << ": " << (*got)[i].status().ToString();
        expected[(*got)[i]->ToString()].push_back(payloads[i]);
      }
      EXPECT_GT(Stat(0, "redispatches"), redispatches) << "no batch failed, nothing was rerouted";
      for (Client* m : {c.first, c.second}) {
        std::vector<std::string> want = expected[m->self().ToString()];
        Inbox box;
        Collect(*m, &box, [&](const Inbox& b) { return b.messages.size() >= want.size(); });
        // Those rerouted come after the rest.
        std::vector<std::string> have = Payloads(box.messages);
        std::sort(have.begin(), have.end());
        std::sort(want.begin(), want.end());
        EXPECT_EQ(have, want);
        EXPECT_EQ(Drain(*m).messages.size(), 0u) << "a payload reached a member twice";
      }
    }
  }
}

// A batch that fills up in the middle of a turn and cannot be handed over
// loses exactly its messages: none is counted delivered, each is counted
// lost and reported, and the next message comes after the notice.
TEST_F(MessagingTest, AFullBatchThatCannotBeSentLosesExactlyItsMessages) {
  Client pub = mesh.Connect(0), sub = mesh.Connect(0);
  ASSERT_TRUE(sub.Subscribe("full.").ok());
  constexpr size_t kBatch = 256;  // wire::kMaxMessageBatch
  std::vector<std::string> payloads;
  for (size_t i = 0; i < kBatch + 1; ++i) payloads.push_back("p" + std::to_string(i));
  const uint64_t delivered = Stat(0, "messages_delivered");
  const uint64_t lost = Stat(0, "client_deliveries_lost");
  mesh.broker(0).FailNextDeliveryFlushes(1);
  // One request, one turn: the first kBatch fill the batch, the last finds
  // it full, and it cannot be sent.
  ASSERT_TRUE(pub.PublishMany("full.x", payloads).ok());
  ASSERT_TRUE(pub.Publish("full.x", "after").ok());
  Inbox box;
  Collect(sub, &box, [](const Inbox& b) { return b.messages.size() >= 2; });
  EXPECT_EQ(box.lost, kBatch);
  EXPECT_EQ(box.gaps, 1u);
  const std::vector<std::string> want = {"p" + std::to_string(kBatch), "after"};
  EXPECT_EQ(Payloads(box.messages), want);
  EXPECT_EQ(Stat(0, "client_deliveries_lost") - lost, kBatch);
  EXPECT_EQ(Stat(0, "messages_delivered") - delivered, 2u);
}

// A DispatchMany that would take a session past its bound of calls awaiting
// an outcome is refused whole: no payload of it is dispatched.
TEST_F(MessagingTest, ADispatchManyPastThePendingBoundIsRefusedWhole) {
  Client sender = mesh.Connect(0), member = mesh.Connect(1);
  ASSERT_TRUE(member.Join("svc", "mute").ok());
  ASSERT_TRUE(member.Join("jobs", "w").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "w", 1));
  // Requests the member never answers hold the session just under its bound.
  constexpr size_t kBound = 10000;  // BrokerLoop::kMaxPendingPerSession
  for (size_t i = 0; i < kBound - 10; ++i) {
    ASSERT_TRUE(sender.RequestAsync("svc", "mute", "q", milliseconds(60000)).ok());
  }
  const std::vector<std::string> payloads(20, "d");
  Result<std::vector<Result<MemberId>>> got = sender.DispatchMany("jobs", "w", payloads);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), payloads.size());
  for (const Result<MemberId>& r : *got) {
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
    EXPECT_NE(r.status().message().find("awaiting an outcome"), std::string::npos);
  }
  // Ten still fit.
  got = sender.DispatchMany("jobs", "w", std::span(payloads).first(10));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  for (const Result<MemberId>& r : *got) EXPECT_TRUE(r.ok()) << r.status().ToString();
  Inbox box;
  Collect(
      member, &box,
      [](const Inbox& b) {
        return std::count_if(b.messages.begin(), b.messages.end(), [](const Message& m) {
                 return m.kind == MessageKind::kDispatch;
               }) >= 10;
      },
      milliseconds(20000));
  EXPECT_EQ(std::count_if(box.messages.begin(), box.messages.end(),
                          [](const Message& m) { return m.kind == MessageKind::kDispatch; }),
            10);
}

// PublishMany and BroadcastMany: every payload its own message, in order and
// from its sender, to receivers here and on other nodes, while the broker
// takes them in a handful of requests (kMaxCastPayloads each).
TEST_F(MessagingTest, PublishManyAndBroadcastManyCarryManyMessagesPerRequest) {
  Client pub = mesh.Connect(0), near = mesh.Connect(0), far = mesh.Connect(2);
  for (Client* c : {&near, &far}) ASSERT_TRUE(c->Subscribe("many.").ok());
  ASSERT_TRUE(AwaitSubscribed(pub, near, "many.probe"));
  ASSERT_TRUE(AwaitSubscribed(pub, far, "many.probe"));
  ASSERT_TRUE(near.Join("many", "g").ok());
  ASSERT_TRUE(far.Join("many", "g").ok());
  ASSERT_TRUE(SeesMembers(pub, "many", "g", 2));
  ASSERT_TRUE(AwaitBroadcastReach(pub, {&near, &far}, "many", "g"));

  constexpr size_t kCount = 1000;  // four requests' worth
  std::vector<std::string> payloads;
  for (size_t i = 0; i < kCount; ++i) payloads.push_back("m" + std::to_string(i));
  const uint64_t requests = Stat(0, "client_messages_in");
  const uint64_t publishes = Stat(0, "publishes_in"), broadcasts = Stat(0, "broadcasts_in");
  ASSERT_TRUE(pub.PublishMany("many.x", payloads).ok());
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  ASSERT_TRUE(pub.BroadcastMany("many", "g", views).ok());
  ASSERT_TRUE(WaitFor([&] { return Stat(0, "broadcasts_in") - broadcasts >= kCount; }));
  EXPECT_EQ(Stat(0, "publishes_in") - publishes, kCount);
  EXPECT_EQ(Stat(0, "broadcasts_in") - broadcasts, kCount);
  // 8 requests, and the odd heartbeat or credit of the three clients.
  EXPECT_LT(Stat(0, "client_messages_in") - requests, 40u)
      << "the payloads went to the broker one request each";

  for (Client* c : {&near, &far}) {
    Inbox box;
    Collect(*c, &box, [](const Inbox& b) { return b.messages.size() >= 2 * kCount; });
    ASSERT_EQ(box.messages.size(), 2 * kCount);
    EXPECT_EQ(box.lost, 0u);
    std::vector<std::string> published, broadcast;
    for (const Message& m : box.messages) {
      EXPECT_EQ(m.from, pub.self());
      if (m.kind == MessageKind::kPublish) {
        EXPECT_EQ(m.topic, "many.x");
        published.push_back(m.payload);
      } else {
        EXPECT_EQ(m.kind, MessageKind::kBroadcast);
        EXPECT_EQ(m.group, "g");
        broadcast.push_back(m.payload);
      }
    }
    EXPECT_EQ(published, payloads);
    EXPECT_EQ(broadcast, payloads);
  }
  // An empty batch is nothing to send, and is no error.
  EXPECT_TRUE(pub.PublishMany("many.x", std::span<const std::string_view>()).ok());
}

// The SDK keeps the rest of a batch in its frame until it is read: a call
// that waits for its reply in the middle of one must leave those messages,
// and the ones after them, to be received in order and whole.
TEST_F(MessagingTest, ACallInTheMiddleOfABatchLeavesTheRestInOrder) {
  Client pub = mesh.Connect(0), sub = mesh.Connect(2);
  ASSERT_TRUE(sub.Subscribe("mid.").ok());
  ASSERT_TRUE(AwaitSubscribed(pub, sub, "mid.probe"));
  std::vector<std::string> payloads;
  for (size_t i = 0; i < 200; ++i) {
    // Sizes that vary, the empty payload among them.
    payloads.push_back(std::string(i % 7 == 0 ? 0 : i, static_cast<char>('a' + i % 26)));
  }
  const uint64_t batches = Stat(2, "client_batches_out");
  ASSERT_TRUE(pub.PublishMany("mid.x", payloads).ok());
  std::vector<std::string> got;
  auto receive_one = [&] {
    Result<Delivery> d = sub.Receive(std::chrono::milliseconds(5000));
    if (!d.ok()) return false;
    if (auto* m = std::get_if<Message>(&*d)) {
      EXPECT_EQ(m->topic, "mid.x");
      EXPECT_EQ(m->from, pub.self());
      got.push_back(m->payload);
    }
    return true;
  };
  ASSERT_TRUE(receive_one());
  // Calls whose replies come after messages still unread.
  ASSERT_TRUE(sub.Members("mid", "nobody").ok());
  ASSERT_TRUE(receive_one());
  ASSERT_TRUE(sub.Nodes().ok());
  while (got.size() < payloads.size() && receive_one()) {
  }
  EXPECT_EQ(got, payloads);
  EXPECT_GT(Stat(2, "client_batches_out"), batches) << "the messages did not come in batches";
}

// The first messages of a topic the subscriber has never seen, lost between
// brokers: numbered in the stream of its subscription, so the loss shows.
TEST_F(MessagingTest, LostFirstMessagesOfANewTopicAreReported) {
  Client pub = mesh.Connect(0), sub = mesh.Connect(1);
  ASSERT_TRUE(sub.Subscribe("t.").ok());
  ASSERT_TRUE(AwaitSubscribed(pub, sub, "t.probe"));
  mesh.broker(0).DropNextData(3);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pub.Publish("t.new", std::to_string(i)).ok());
  Inbox box;
  Collect(sub, &box, [](const Inbox& b) { return b.messages.size() >= 2 && b.lost >= 3; });
  EXPECT_EQ(Payloads(box.messages), (std::vector<std::string>{"3", "4"}));
  EXPECT_EQ(box.lost, 3u);
}

class SlowConsumerTest : public MessagingTest {
 protected:
  static BrokerOptions Small() {
    BrokerOptions o = TestMesh::FastOptions();
    o.max_message_bytes = 4096;
    o.client_queue_bytes = 64 * 1024;
    return o;
  }
  SlowConsumerTest() : MessagingTest(2, Small()) {}
};

TEST_F(SlowConsumerTest, OverflowIsCountedReportedExactlyAndBounded) {
  Client pub = mesh.Connect(0), sub = mesh.Connect(1);
  ASSERT_TRUE(sub.Subscribe("t").ok());
  ASSERT_TRUE(AwaitSubscribed(pub, sub, "t"));
  constexpr int kCount = 2000;
  const std::string kilobyte(1024, 'k');
  // The subscriber reads nothing while 2 MB come for its 64 KiB queue.
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(pub.Publish("t", kilobyte).ok());
  ASSERT_TRUE(WaitFor(
      [&] { return Stat(1, "messages_delivered") + Stat(1, "client_deliveries_lost") >= kCount; }));
  EXPECT_LE(Stat(1, "client_bytes_queued"), 64u * 1024 + 2048) << "the queue grew past its bound";
  EXPECT_GT(Stat(1, "slow_consumers"), 0u);
  Inbox box;
  Collect(sub, &box, [&](const Inbox& b) { return b.messages.size() + b.lost >= kCount; });
  EXPECT_GT(box.lost, 0u) << "the queue never overflowed: the test proves nothing";
  EXPECT_EQ(box.messages.size() + box.lost, size_t(kCount))
      << box.messages.size() << " received, " << box.lost << " reported lost";
  EXPECT_EQ(Stat(1, "client_deliveries_lost") + Stat(1, "data_messages_lost"), box.lost);
  EXPECT_LE(box.gaps, 3u) << "one overflow is reported in a notice or two, not one per message";
  // Once it reads again, it gets everything.
  ASSERT_TRUE(pub.Publish("t", "after").ok());
  box = Inbox{};
  Collect(sub, &box, [](const Inbox& b) { return !b.messages.empty(); });
  EXPECT_EQ(Payloads(box.messages), std::vector<std::string>{"after"});
}

// A dispatch that does not fit a member's queue is refused and goes to
// another member, or fails with the reason: it is not a loss, so the member
// gets no gap notice for it.
TEST_F(SlowConsumerTest, ADispatchThatDoesNotFitIsRefusedNotLost) {
  Client sender = mesh.Connect(0), slow = mesh.Connect(1);
  ASSERT_TRUE(slow.Join("jobs", "solo").ok());
  ASSERT_TRUE(SeesMembers(sender, "jobs", "solo", 1));
  const std::string big(4000, 'd');
  int delivered = 0;
  Result<MemberId> last = MemberId{};
  // The slow member reads nothing: 64 KiB hold about 16 of them.
  for (int i = 0; i < 100 && last.ok(); ++i) {
    last = sender.Dispatch("jobs", "solo", big);
    delivered += last.ok();
  }
  ASSERT_FALSE(last.ok()) << "the queue never filled: the test proves nothing";
  EXPECT_EQ(last.status().code(), Code::kUnavailable) << last.status().ToString();
  EXPECT_NE(last.status().message().find("is full"), std::string::npos) << last.status().ToString();
  EXPECT_GT(delivered, 5);
  EXPECT_EQ(Stat(1, "client_deliveries_lost"), 0u);
  Inbox box = Drain(slow);
  EXPECT_EQ(int(box.messages.size()), delivered);
  EXPECT_EQ(box.gaps, 0u) << "a refused dispatch was reported lost";
}

// ---- bad input -------------------------------------------------------------

TEST_F(SlowConsumerTest, OversizeAndMalformedCallsGetErrors) {
  Client c = mesh.Connect(0);
  EXPECT_EQ(c.max_message_bytes(), 4096u);
  const std::string big(4097, 'x');
  EXPECT_EQ(c.Publish("t", big).code(), Code::kTooLarge);
  EXPECT_EQ(c.Broadcast("s", "g", big).code(), Code::kTooLarge);
  EXPECT_EQ(c.Dispatch("s", "g", big).status().code(), Code::kTooLarge);
  EXPECT_EQ(c.Request("s", "g", big, milliseconds(100)).status().code(), Code::kTooLarge);
  EXPECT_EQ(c.Send(c.self(), big).code(), Code::kTooLarge);
  const std::vector<std::string> one_too_big = {"a", big, "c"};
  Status whole = c.PublishMany("t", one_too_big);
  EXPECT_EQ(whole.code(), Code::kTooLarge);
  EXPECT_NE(whole.message().find("payload 2 of 3"), std::string::npos) << whole.message();
  EXPECT_EQ(c.BroadcastMany("s", "g", one_too_big).code(), Code::kTooLarge);
  Result<std::vector<Result<MemberId>>> refused = c.DispatchMany("s", "g", one_too_big);
  EXPECT_EQ(refused.status().code(), Code::kTooLarge);
  EXPECT_NE(refused.status().message().find("payload 2 of 3"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(c.DispatchMany("", "g", std::vector<std::string>{"x"}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(c.PublishMany("bad\ntopic", std::vector<std::string>{"x"}).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(c.BroadcastMany("s", "", std::vector<std::string>{"x"}).code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Publish("", "x").code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Publish("bad\ntopic", "x").code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Subscribe(std::string(300, 't')).code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Broadcast("s", "", "x").code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Dispatch("", "g", "x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Request("s", "g", "x", milliseconds(0)).status().code(), Code::kInvalidArgument);
  Message not_a_request;
  EXPECT_EQ(c.Reply(not_a_request, "x").code(), Code::kInvalidArgument);

  // The same, past the SDK's checks: a raw client gets the broker's errors.
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect("ipc://" + mesh.client_endpoint(0));
  auto send_raw = [&](const std::string& header, const std::vector<std::string>& payloads) {
    raw.send(zmq::buffer(header),
             payloads.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
    for (size_t i = 0; i < payloads.size(); ++i) {
      raw.send(zmq::buffer(payloads[i]),
               i + 1 < payloads.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  };
  auto call = [&](const std::string& header, const std::vector<std::string>& payloads) -> Status {
    send_raw(header, payloads);
    zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, milliseconds(2000)) != 1) return Status::Timeout("no answer");
    std::vector<zmq::message_t> frames;
    (void)zmq::recv_multipart(raw, std::back_inserter(frames));
    Result<wire::ClientInbound> in = wire::DecodeClientInbound(frames[0].to_string_view());
    if (!in.ok()) return in.status();
    auto* reply = std::get_if<wire::Reply>(&*in);
    return reply ? reply->status : Status::Internal("not a reply");
  };
  std::string hello =
      wire::Encode(wire::ClientRequest(wire::Hello{1, wire::kProtocolVersion, "raw"}));
  ASSERT_TRUE(call(hello, {}).ok());
  std::string publish = wire::Encode(wire::ClientRequest(wire::Publish{2, "t"}));
  EXPECT_EQ(call(publish, {big}).code(), Code::kTooLarge);
  EXPECT_EQ(call(publish + big, {}).code(), Code::kTooLarge) << "a payload in the request's frame";
  std::string join = wire::Encode(wire::ClientRequest(wire::Join{3, "s", "g"}));
  std::string small = "x";
  EXPECT_EQ(call(join, {small}).code(), Code::kBadMessage) << "a join takes no payload";
  EXPECT_EQ(call(join + small, {}).code(), Code::kBadMessage) << "nor bytes after it";
  EXPECT_EQ(call(publish + small, {small}).code(), Code::kBadMessage) << "two payloads";
  std::string respond = wire::Encode(wire::ClientRequest(wire::Respond{4, "n1.1.99"}));
  EXPECT_EQ(call(respond, {small}).code(), Code::kNotFound);
  EXPECT_EQ(call(respond + small, {}).code(), Code::kNotFound);
  std::string send = wire::Encode(wire::ClientRequest(wire::Send{5, MemberId{"n1", 1, 1}}));
  EXPECT_EQ(call(send, {small}).code(), Code::kNotFound);
  EXPECT_EQ(call(send + small, {}).code(), Code::kNotFound);

  // Many payloads in one frame: only a publish or broadcast packs them, as
  // many as its count says, and a batch with one too large is refused whole.
  Client sub = mesh.Connect(0);
  ASSERT_TRUE(sub.Subscribe("raw.").ok());
  auto pack = [](const std::vector<std::string>& payloads) {
    std::string frame;
    for (const std::string& p : payloads) wire::AppendSized(&frame, p);
    return frame;
  };
  auto many = [](uint32_t n) {
    return wire::Encode(wire::ClientRequest(wire::Publish{7, "raw.t", n}));
  };
  EXPECT_EQ(call(publish, {small, small}).code(), Code::kBadMessage) << "one payload frame only";
  Status short_frame = call(many(3), {pack({"a", "b"})});
  EXPECT_EQ(short_frame.code(), Code::kBadMessage);
  EXPECT_NE(short_frame.message().find("count"), std::string::npos) << short_frame.message();
  EXPECT_EQ(call(many(1), {pack({"a", "b"})}).code(), Code::kBadMessage) << "more than counted";
  EXPECT_EQ(call(many(1), {"not packed"}).code(), Code::kBadMessage);
  Status whole_raw = call(many(3), {pack({"a", big, "c"})});
  EXPECT_EQ(whole_raw.code(), Code::kTooLarge);
  EXPECT_NE(whole_raw.message().find("payload 2 of 3"), std::string::npos) << whole_raw.message();
  const uint64_t publishes = Stat(0, "publishes_in");
  std::vector<std::string> good;
  for (size_t i = 0; i < wire::kMaxCastPayloads; ++i) good.push_back("r" + std::to_string(i));
  send_raw(many(uint32_t(good.size())), {pack(good)});  // answered only on error
  // One payload after its request in the same frame, and in a frame of its
  // own: a frame that ends with the request carries an empty one.
  std::string one = wire::Encode(wire::ClientRequest(wire::Publish{9, "raw.one"}));
  send_raw(one + "in its request's frame", {});
  send_raw(one, {"in a frame of its own"});
  send_raw(one, {});
  std::vector<std::string> want = good;
  for (const char* p : {"in its request's frame", "in a frame of its own", ""}) want.push_back(p);
  Inbox box;
  Collect(sub, &box, [&](const Inbox& b) { return b.messages.size() >= want.size(); });
  EXPECT_EQ(Payloads(box.messages), want) << "a refused batch must deliver nothing";
  EXPECT_EQ(Stat(0, "publishes_in") - publishes, want.size());
  EXPECT_GE(Stat(0, "messages_too_large"), 1u);
  // A DispatchMany's frame is checked the same way, before any is dispatched.
  auto dispatch_many = [](uint32_t n) {
    return wire::Encode(wire::ClientRequest(wire::Dispatch{8, "s", "g", n}));
  };
  const uint64_t dispatches = Stat(0, "dispatches_in");
  EXPECT_EQ(call(dispatch_many(3), {pack({"a", "b"})}).code(), Code::kBadMessage);
  EXPECT_EQ(call(dispatch_many(1), {pack({"a", "b"})}).code(), Code::kBadMessage);
  EXPECT_EQ(call(dispatch_many(3), {pack({"a", big, "c"})}).code(), Code::kTooLarge);
  EXPECT_EQ(Stat(0, "dispatches_in"), dispatches);
  // And it still serves.
  EXPECT_TRUE(c.Members("s", "g").ok());
}

}  // namespace
}  // namespace meshbus::testing
