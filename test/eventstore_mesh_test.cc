// Integration tests of the event-store layer (issue 5, DESIGN.md §6) on real
// brokers in this process, meshed over loopback TCP, driven through the SDK:
// three registry voters n1..n3 and a learner n4 that starts late. The store
// registry (announce, list, info, unannounce, re-announce, events, a late
// joiner, a dead node's stores, an ended session's); emitter groups (local
// and remote delivery with their tags, no_emitters, a uniform choice,
// persisted names); tracker groups (every tracker, once); subscriptions; and
// the store leader (one active, the default subscription saved once, pools
// following the subscriptions, failover with every event delivered).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "sdk/emitter.h"
#include "sdk/eventstore.h"
#include "sdk/store_leader.h"
#include "sdk/store_registry.h"
#include "test/test_mesh.h"

namespace meshbus::testing {
namespace {

using namespace meshbus::eventstore;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kBrokers = 4;
constexpr int kLate = 3;  // n4: a learner, started by the tests that want it

class EventStoreMeshTest : public ::testing::Test {
 protected:
  static BrokerOptions Options() {
    BrokerOptions o = TestMesh::FastOptions();
    o.voters = {"n1", "n2", "n3"};
    // As in the registry's tests: fast, but slow enough that two shared
    // cores under load do not declare a live session or node dead.
    o.suspicion_timeout = milliseconds(300);
    o.probe_timeout = milliseconds(200);
    o.session_timeout = milliseconds(1000);
    return o;
  }

  EventStoreMeshTest() : mesh(kBrokers, Options(), /*started=*/3) {}

  void SetUp() override {
    ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
    for (int i = 0; i < 3; ++i) admin.emplace_back(Connect(i, "admin"));
    // A registry leader, seen from every voter.
    ASSERT_TRUE(WaitFor(
        [&] {
          for (auto& a : admin) {
            Result<LeaderInfo> l = a->Leader();
            if (!l.ok() || l->leader.empty()) return false;
          }
          return true;
        },
        milliseconds(8000)));
  }

  ClientOptions OptionsFor(int i, const std::string& name) {
    ClientOptions o;
    o.endpoint = "ipc://" + mesh.client_endpoint(i);
    o.name = name;
    o.call_timeout = milliseconds(2000);
    return o;
  }
  Client Connect(int i, const std::string& name) {
    Result<Client> c = Client::Connect(OptionsFor(i, name));
    if (!c.ok())
      throw std::runtime_error("connect to " + mesh.name(i) + ": " + c.status().ToString());
    return std::move(c.value());
  }
  void StartLate() {
    mesh.Start(kLate);
    ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  }

  static StoreConfig Config(const std::string& store, const std::string& dir = "/data") {
    StoreConfig c;
    c.store_id = store;
    c.data_dir = dir;
    c.mode = StoreMode::kCluster;
    c.options = {{"replicas", "3"}};
    return c;
  }
  static std::vector<std::pair<std::string, std::string>> Keys(
      const std::vector<StoreEntry>& entries) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const StoreEntry& e : entries) out.emplace_back(e.config.store_id, e.node);
    return out;
  }
  // True once broker i lists exactly these (store, node) entries.
  bool Lists(Client& c, std::vector<std::pair<std::string, std::string>> want) {
    Result<std::vector<StoreEntry>> all = ListStores(c);
    return all.ok() && Keys(*all) == want;
  }

  // The next StoreEvent on `c` within `timeout`, skipping other deliveries.
  static std::optional<StoreEvent> NextStoreEvent(Client& c,
                                                  milliseconds timeout = milliseconds(5000)) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      Result<Delivery> d = c.Receive(milliseconds(100));
      if (!d.ok()) continue;
      if (const NameEvent* e = std::get_if<NameEvent>(&*d)) {
        if (Result<StoreEvent> s = AsStoreEvent(*e); s.ok()) return *s;
      }
    }
    return std::nullopt;
  }

  // A real emitter of (store, subscription) on broker i.
  std::unique_ptr<Emitter> StartEmitter(int i, const std::string& name,
                                        const Subscription& sub = DefaultSubscription(),
                                        const std::string& store = "orders") {
    Result<std::unique_ptr<Emitter>> e = Emitter::Start(OptionsFor(i, name), store, sub, name);
    if (!e.ok()) throw std::runtime_error("emitter " + name + ": " + e.status().ToString());
    return std::move(e.value());
  }
  // How many emitters `c` sees for the subscription; -1 on an error.
  static int EmitterCount(Client& c, const std::string& sub, const std::string& store = "orders") {
    Result<std::vector<MemberId>> m = EmitterMembers(c, store, sub);
    return m.ok() ? static_cast<int>(m->size()) : -1;
  }
  // Takes from `subscriber` what arrives within `timeout`: the events of
  // orders:<sub>, and how many messages were not (other topics).
  static std::vector<Event> EventsOf(Client& subscriber, const std::string& sub, size_t want,
                                     int* others = nullptr,
                                     milliseconds timeout = milliseconds(5000)) {
    std::vector<Event> got;
    WaitFor(
        [&] {
          Result<Delivery> d = subscriber.Receive(milliseconds(100));
          if (d.ok()) {
            if (const Message* m = std::get_if<Message>(&*d)) {
              Result<Event> e = AsSubscriptionEvent(*m, "orders", sub);
              if (e.ok()) {
                got.push_back(*e);
              } else if (others != nullptr) {
                ++*others;
              }
            }
          }
          return got.size() >= want;
        },
        timeout);
    return got;
  }

  static Subscription Sub(const std::string& id, SubscriptionType type, const std::string& selector,
                          uint32_t pool_size) {
    Subscription s;
    s.id = id;
    s.type = type;
    s.selector = selector;
    s.name = id + " (test)";
    s.pool_size = pool_size;
    return s;
  }

  static Event MakeEvent(int i) {
    Event e;
    e.event_id = "e" + std::to_string(i);
    e.event_type = "order_placed";
    e.stream_id = "orders-" + std::to_string(i % 7);
    e.version = i;
    e.data = "{\"n\":" + std::to_string(i) + "}";
    e.tags = {"orders"};
    e.timestamp_ms = 1700000000000 + i;
    e.epoch_us = e.timestamp_ms * 1000;
    e.data_content_type = "application/json";
    return e;
  }

  TestMesh mesh;
  std::vector<std::optional<Client>> admin;  // n1..n3
};

// ---- the store registry -------------------------------------------------------

TEST_F(EventStoreMeshTest, AnnounceListInfoAndUnannounceAcrossNodes) {
  Client a = Connect(0, "store-a");
  Client b = Connect(1, "store-b");
  Client watcher = Connect(2, "watcher");
  Result<StoreMonitorStart> watch = SubscribeStoreEvents(watcher);
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  EXPECT_TRUE(watch->stores.empty());

  // Unknown store: not_found; bad ids: invalid_argument.
  EXPECT_EQ(StoreInfo(watcher, "orders").status().code(), Code::kNotFound);
  EXPECT_EQ(StoreInfo(watcher, "bad:id").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(AnnounceStore(a, Config("")).code(), Code::kInvalidArgument);
  EXPECT_EQ(ListStoresOnNode(watcher, "no such node!").status().code(), Code::kInvalidArgument);

  ASSERT_TRUE(AnnounceStore(a, Config("orders", "/a")).ok());
  ASSERT_TRUE(AnnounceStore(b, Config("orders", "/b")).ok());
  ASSERT_TRUE(AnnounceStore(b, Config("users")).ok());

  // A remote announce is seen as an event and in every listing.
  std::set<std::pair<std::string, std::string>> announced;
  for (int i = 0; i < 3; ++i) {
    std::optional<StoreEvent> e = NextStoreEvent(watcher);
    ASSERT_TRUE(e.has_value()) << "announce " << i;
    EXPECT_EQ(e->ref, watch->ref);
    EXPECT_EQ(e->kind, StoreEventKind::kAnnounced);
    announced.emplace(e->entry.config.store_id, e->entry.node);
  }
  EXPECT_EQ(announced, (std::set<std::pair<std::string, std::string>>{
                           {"orders", "n1"}, {"orders", "n2"}, {"users", "n2"}}));
  ASSERT_TRUE(WaitFor([&] {
    return Lists(watcher, {{"orders", "n1"}, {"orders", "n2"}, {"users", "n2"}});
  }));

  Result<std::vector<StoreEntry>> info = StoreInfo(watcher, "orders");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_EQ(info->size(), 2u);
  EXPECT_EQ((*info)[0].node, "n1");
  EXPECT_EQ((*info)[0].announcer, a.self());
  EXPECT_EQ((*info)[0].config, Config("orders", "/a"));
  EXPECT_EQ((*info)[1].config.data_dir, "/b");
  EXPECT_GT((*info)[0].registered_at_us, 0);

  Result<std::vector<StoreEntry>> on_n2 = ListStoresOnNode(watcher, "n2");
  ASSERT_TRUE(on_n2.ok());
  EXPECT_EQ(Keys(*on_n2),
            (std::vector<std::pair<std::string, std::string>>{{"orders", "n2"}, {"users", "n2"}}));

  // A re-announce replaces the entry: one per node still, the new config,
  // a later registration time, and an announced event.
  int64_t first_at = (*info)[0].registered_at_us;
  ASSERT_TRUE(AnnounceStore(a, Config("orders", "/a2")).ok());
  std::optional<StoreEvent> re = NextStoreEvent(watcher);
  ASSERT_TRUE(re.has_value());
  EXPECT_EQ(re->kind, StoreEventKind::kAnnounced);
  EXPECT_EQ(re->entry.config.data_dir, "/a2");
  ASSERT_TRUE(WaitFor([&] {
    Result<std::vector<StoreEntry>> i = StoreInfo(watcher, "orders");
    return i.ok() && i->size() == 2 && (*i)[0].config.data_dir == "/a2";
  }));
  EXPECT_GT(StoreInfo(watcher, "orders")->at(0).registered_at_us, first_at);

  // Another session on the same node may not take or retire it.
  Client intruder = Connect(0, "intruder");
  EXPECT_EQ(AnnounceStore(intruder, Config("orders")).code(), Code::kTaken);
  EXPECT_EQ(UnannounceStore(intruder, "orders").code(), Code::kNotHolder);
  EXPECT_EQ(UnannounceStore(intruder, "nothing").code(), Code::kNotFound);

  // A remote unannounce: a retired event, and gone from every listing.
  ASSERT_TRUE(UnannounceStore(b, "orders").ok());
  std::optional<StoreEvent> retired = NextStoreEvent(watcher);
  ASSERT_TRUE(retired.has_value());
  EXPECT_EQ(retired->kind, StoreEventKind::kRetired);
  EXPECT_EQ(retired->entry.node, "n2");
  EXPECT_EQ(retired->entry.config.store_id, "orders");
  ASSERT_TRUE(WaitFor([&] { return Lists(watcher, {{"orders", "n1"}, {"users", "n2"}}); }));
  EXPECT_EQ(UnannounceStore(b, "orders").code(), Code::kNotFound);
}

TEST_F(EventStoreMeshTest, ALateJoinerLearnsEveryStore) {
  Client a = Connect(0, "store-a");
  Client b = Connect(2, "store-b");
  ASSERT_TRUE(AnnounceStore(a, Config("orders")).ok());
  ASSERT_TRUE(AnnounceStore(b, Config("users")).ok());
  StartLate();
  Client late = Connect(kLate, "late");
  EXPECT_TRUE(WaitFor([&] { return Lists(late, {{"orders", "n1"}, {"users", "n3"}}); }));
  Result<std::vector<StoreEntry>> info = StoreInfo(late, "users");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->at(0).config, Config("users"));
}

TEST_F(EventStoreMeshTest, ADeadNodesStoresArePurgedWithRetiredEvents) {
  StartLate();
  Client on_late = Connect(kLate, "store-late");
  Client a = Connect(0, "store-a");
  ASSERT_TRUE(AnnounceStore(on_late, Config("orders")).ok());
  ASSERT_TRUE(AnnounceStore(on_late, Config("users")).ok());
  ASSERT_TRUE(AnnounceStore(a, Config("orders")).ok());
  Client watcher = Connect(1, "watcher");
  ASSERT_TRUE(WaitFor([&] {
    return Lists(watcher, {{"orders", "n1"}, {"orders", "n4"}, {"users", "n4"}});
  }));
  ASSERT_TRUE(SubscribeStoreEvents(watcher).ok());

  mesh.Stop(kLate, /*graceful=*/false);
  std::set<std::pair<std::string, std::string>> retired;
  for (int i = 0; i < 2; ++i) {
    std::optional<StoreEvent> e = NextStoreEvent(watcher, milliseconds(8000));
    ASSERT_TRUE(e.has_value()) << "retired event " << i;
    EXPECT_EQ(e->kind, StoreEventKind::kRetired);
    retired.emplace(e->entry.config.store_id, e->entry.node);
  }
  EXPECT_EQ(retired,
            (std::set<std::pair<std::string, std::string>>{{"orders", "n4"}, {"users", "n4"}}));
  for (auto& c : admin) EXPECT_TRUE(WaitFor([&] { return Lists(*c, {{"orders", "n1"}}); }));
}

TEST_F(EventStoreMeshTest, AnEndedSessionsStoresAreRetired) {
  Client watcher = Connect(2, "watcher");
  {
    Client a = Connect(0, "store-a");
    ASSERT_TRUE(AnnounceStore(a, Config("orders")).ok());
    ASSERT_TRUE(WaitFor([&] { return Lists(watcher, {{"orders", "n1"}}); }));
    ASSERT_TRUE(SubscribeStoreEvents(watcher).ok());
  }
  std::optional<StoreEvent> e = NextStoreEvent(watcher);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->kind, StoreEventKind::kRetired);
  EXPECT_TRUE(WaitFor([&] { return Lists(watcher, {}); }));
}

// ---- emitter groups -----------------------------------------------------------

TEST_F(EventStoreMeshTest, EmitterJoinLeaveMembersAndNoEmitters) {
  Client writer = Connect(0, "writer");
  EXPECT_EQ(BroadcastEvent(writer, "orders", "$all", MakeEvent(1)).status().code(),
            Code::kNoEmitters);
  EXPECT_EQ(BroadcastEvent(writer, "bad:store", "$all", MakeEvent(1)).status().code(),
            Code::kInvalidArgument);
  Event bad = MakeEvent(1);
  bad.event_id.clear();
  EXPECT_EQ(BroadcastEvent(writer, "orders", "$all", bad).status().code(), Code::kInvalidArgument);

  Client e1 = Connect(1, "e1");
  Client e2 = Connect(2, "e2");
  ASSERT_TRUE(JoinEmitters(e1, "orders", "$all").ok());
  ASSERT_TRUE(JoinEmitters(e2, "orders", "$all").ok());
  ASSERT_TRUE(JoinEmitters(e2, "orders", "other").ok());
  ASSERT_TRUE(WaitFor([&] {
    Result<std::vector<MemberId>> m = EmitterMembers(writer, "orders", "$all");
    return m.ok() && m->size() == 2;
  }));
  std::vector<MemberId> want = {e1.self(), e2.self()};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(*EmitterMembers(writer, "orders", "$all"), want);
  ASSERT_TRUE(LeaveEmitters(e1, "orders", "$all").ok());
  EXPECT_EQ(LeaveEmitters(e1, "orders", "$all").code(), Code::kNotJoined);
  EXPECT_TRUE(WaitFor([&] {
    Result<std::vector<MemberId>> m = EmitterMembers(writer, "orders", "$all");
    return m.ok() && *m == std::vector<MemberId>{e2.self()};
  }));
  EXPECT_EQ(EmitterMembers(writer, "orders", "bad sub").status().code(), Code::kInvalidArgument);
}

TEST_F(EventStoreMeshTest, EventsReachSubscribersTaggedByHowTheyCame) {
  Client subscriber = Connect(2, "subscriber");
  ASSERT_TRUE(subscriber.Subscribe(SubscriptionTopic("orders", "$all")).ok());

  std::unique_ptr<Emitter> local = StartEmitter(0, "local-emitter");
  Client writer = Connect(0, "writer");
  ASSERT_TRUE(WaitFor([&] { return EmitterCount(writer, "$all") == 1; }));
  // A topic the subscription's is a prefix of: its messages are not ours.
  ASSERT_TRUE(writer.Publish(SubscriptionTopic("orders", "$all2"), EncodeEvent(MakeEvent(0))).ok());
  Result<MemberId> by = BroadcastEvent(writer, "orders", "$all", MakeEvent(1));
  ASSERT_TRUE(by.ok()) << by.status().ToString();
  EXPECT_EQ(*by, local->self());
  EXPECT_EQ(local->forwarded(EmitterTag::kForwardToLocal), 1u);
  EXPECT_EQ(local->forwarded(EmitterTag::kBroadcast), 0u);

  Client remote_writer = Connect(1, "remote-writer");
  ASSERT_TRUE(WaitFor([&] { return EmitterCount(remote_writer, "$all") == 1; }));
  ASSERT_TRUE(BroadcastEvent(remote_writer, "orders", "$all", MakeEvent(2)).ok());
  EXPECT_EQ(local->forwarded(EmitterTag::kBroadcast), 1u);

  int others = 0;
  std::vector<Event> got = EventsOf(subscriber, "$all", 2, &others);
  EXPECT_EQ(got, (std::vector<Event>{MakeEvent(1), MakeEvent(2)}));
  EXPECT_EQ(others, 1);  // the orders:$all2 message, told apart
}

TEST_F(EventStoreMeshTest, AnEmitterRefusesWhatItsSubscriptionDoesNotSelect) {
  std::unique_ptr<Emitter> paid =
      StartEmitter(1, "paid-emitter", Sub("paid", SubscriptionType::kEventType, "order_paid", 1));
  Client writer = Connect(0, "writer");
  ASSERT_TRUE(WaitFor([&] { return EmitterCount(writer, "paid") == 1; }));
  Result<MemberId> r = BroadcastEvent(writer, "orders", "paid", MakeEvent(1));  // order_placed
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("does not select"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(paid->refused(), 1u);
  Event e = MakeEvent(2);
  e.event_type = "order_paid";
  EXPECT_TRUE(BroadcastEvent(writer, "orders", "paid", e).ok());
  // DeliverEvent does not retry a refusal.
  EXPECT_EQ(DeliverEvent(writer, "orders", "paid", MakeEvent(3)).status().code(),
            Code::kInvalidArgument);
}

TEST_F(EventStoreMeshTest, TheEmitterIsChosenUniformlyAcrossTheMesh) {
  std::vector<std::unique_ptr<Emitter>> emitters;
  for (int i = 0; i < 3; ++i) emitters.push_back(StartEmitter(i, "emitter" + std::to_string(i)));
  emitters.push_back(StartEmitter(1, "emitter3"));
  Client writer = Connect(0, "writer");
  ASSERT_TRUE(WaitFor([&] { return EmitterCount(writer, "$all") == 4; }));
  constexpr int kEvents = 800;
  std::map<MemberId, int> chosen;
  for (int i = 0; i < kEvents; ++i) {
    Result<MemberId> by = BroadcastEvent(writer, "orders", "$all", MakeEvent(i));
    ASSERT_TRUE(by.ok()) << by.status().ToString();
    ++chosen[*by];
  }
  // Pearson's chi-square against 200 each, 3 degrees of freedom: over 16.27
  // happens by chance once in a thousand runs.
  double expected = kEvents / 4.0, chi2 = 0;
  for (auto& e : emitters) {
    double o = chosen[e->self()];
    chi2 += (o - expected) * (o - expected) / expected;
    EXPECT_EQ(e->forwarded(EmitterTag::kForwardToLocal) + e->forwarded(EmitterTag::kBroadcast),
              static_cast<uint64_t>(o));
  }
  EXPECT_LT(chi2, 16.27) << "choices: " << chosen[emitters[0]->self()] << " "
                         << chosen[emitters[1]->self()] << " " << chosen[emitters[2]->self()] << " "
                         << chosen[emitters[3]->self()];
  // The local emitter got its share without a hop, the others as broadcasts.
  EXPECT_EQ(emitters[0]->forwarded(EmitterTag::kBroadcast), 0u);
  EXPECT_EQ(emitters[1]->forwarded(EmitterTag::kForwardToLocal), 0u);
}

TEST_F(EventStoreMeshTest, AnEmitterStoppedMidStreamLosesNothing) {
  Client subscriber = Connect(2, "subscriber");
  ASSERT_TRUE(subscriber.Subscribe(SubscriptionTopic("orders", "$all")).ok());
  std::unique_ptr<Emitter> stopping = StartEmitter(1, "stopping");
  std::unique_ptr<Emitter> staying = StartEmitter(2, "staying");
  Client writer = Connect(0, "writer");
  ASSERT_TRUE(WaitFor([&] { return EmitterCount(writer, "$all") == 2; }));
  constexpr int kEvents = 200;
  std::atomic<int> written{0};
  std::string error;
  {
    std::jthread w([&] {
      for (int i = 0; i < kEvents; ++i) {
        Result<MemberId> r = DeliverEvent(writer, "orders", "$all", MakeEvent(i));
        if (!r.ok()) {
          error = r.status().ToString();
          return;
        }
        written = i + 1;
      }
    });
    ASSERT_TRUE(WaitFor([&] { return written >= kEvents / 4 || !error.empty(); }));
    stopping->RequestStop();
    stopping->Join();
  }
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_GT(stopping->forwarded(EmitterTag::kBroadcast), 0u);
  std::vector<Event> got = EventsOf(subscriber, "$all", kEvents);
  std::set<std::string> ids;
  for (const Event& e : got) ids.insert(e.event_id);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kEvents));
}

TEST_F(EventStoreMeshTest, PersistedEmitterNamesAreKeptAndSeenEverywhere) {
  Client a = Connect(0, "a");
  Client b = Connect(2, "b");
  Result<std::optional<std::vector<std::string>>> none = RetrieveEmitters(a, "orders", "$all");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(PersistEmitters(a, "orders", "$all", 0).status().code(), Code::kInvalidArgument);
  Result<std::vector<std::string>> kept = PersistEmitters(a, "orders", "$all", 3);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(*kept, (std::vector<std::string>{"orders_$all_emitter", "orders_$all_emitter_2",
                                             "orders_$all_emitter_3"}));
  EXPECT_TRUE(WaitFor([&] {
    Result<std::optional<std::vector<std::string>>> r = RetrieveEmitters(b, "orders", "$all");
    return r.ok() && r->has_value() && **r == *kept;
  }));
}

// ---- tracker groups -----------------------------------------------------------

TEST_F(EventStoreMeshTest, TrackerNoticesReachEveryTrackerOnce) {
  StartLate();
  std::vector<Client> trackers;
  for (int i = 0; i < kBrokers; ++i) {
    trackers.push_back(Connect(i, "tracker" + std::to_string(i)));
    ASSERT_TRUE(JoinTrackers(trackers.back(), "orders", "subscriptions").ok());
  }
  Client other = Connect(1, "other-feature");
  ASSERT_TRUE(JoinTrackers(other, "orders", "streams").ok());
  Client notifier = Connect(0, "notifier");
  ASSERT_TRUE(WaitFor([&] {
    Result<std::vector<MemberId>> m = TrackerMembers(notifier, "orders", "subscriptions");
    return m.ok() && m->size() == kBrokers;
  }));
  EXPECT_EQ(Notify(notifier, "orders", TrackerKind::kCreated, "bad feature", "").code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(NotifyCreated(notifier, "orders", "subscriptions", "s1").ok());
  ASSERT_TRUE(NotifyUpdated(notifier, "orders", "subscriptions", "s1'").ok());
  ASSERT_TRUE(NotifyDeleted(notifier, "orders", "subscriptions", "s1").ok());
  const std::vector<TrackerNotice> want = {{TrackerKind::kCreated, "subscriptions", "s1"},
                                           {TrackerKind::kUpdated, "subscriptions", "s1'"},
                                           {TrackerKind::kDeleted, "subscriptions", "s1"}};
  for (Client& t : trackers) {
    std::vector<TrackerNotice> got;
    ASSERT_TRUE(WaitFor([&] {
      Result<Delivery> d = t.Receive(milliseconds(100));
      if (d.ok()) {
        if (const Message* m = std::get_if<Message>(&*d)) {
          Result<TrackerDelivery> n = AsTrackerDelivery(*m);
          EXPECT_TRUE(n.ok()) << n.status().ToString();
          if (n.ok()) {
            EXPECT_EQ(n->store, "orders");
            got.push_back(n->notice);
          }
        }
      }
      return got.size() >= want.size();
    })) << t.node();
    EXPECT_EQ(got, want) << t.node();
    // Once each: nothing more comes.
    Result<Delivery> more = t.Receive(milliseconds(200));
    EXPECT_EQ(more.status().code(), Code::kTimeout) << t.node();
  }
  EXPECT_EQ(other.Receive(milliseconds(100)).status().code(), Code::kTimeout);
  ASSERT_TRUE(LeaveTrackers(trackers[0], "orders", "subscriptions").ok());
  EXPECT_EQ(LeaveTrackers(trackers[0], "orders", "subscriptions").code(), Code::kNotJoined);
}

// ---- subscriptions ------------------------------------------------------------

TEST_F(EventStoreMeshTest, SubscriptionsAreKeptAndDuplicatesRefused) {
  Client a = Connect(0, "a");
  Client tracker = Connect(2, "tracker");
  ASSERT_TRUE(JoinTrackers(tracker, "orders", std::string(kSubscriptionsFeature)).ok());
  ASSERT_TRUE(WaitFor([&] {
    Result<std::vector<MemberId>> m =
        TrackerMembers(a, "orders", std::string(kSubscriptionsFeature));
    return m.ok() && m->size() == 1;
  }));
  Subscription by_stream = Sub("one-order", SubscriptionType::kStream, "orders-1", 2);
  Subscription by_pattern = Sub("all-orders", SubscriptionType::kEventPattern, "orders-*", 1);
  ASSERT_TRUE(CreateSubscription(a, "orders", by_stream).ok());
  ASSERT_TRUE(CreateSubscription(a, "orders", by_pattern).ok());
  EXPECT_EQ(CreateSubscription(a, "orders", by_stream).code(), Code::kExists);
  Subscription bad = by_stream;
  bad.pool_size = 0;
  EXPECT_EQ(CreateSubscription(a, "orders", bad).code(), Code::kInvalidArgument);

  Result<std::vector<Subscription>> subs = ListSubscriptions(a, "orders", /*consistent=*/true);
  ASSERT_TRUE(subs.ok()) << subs.status().ToString();
  EXPECT_EQ(*subs, (std::vector<Subscription>{by_pattern, by_stream}));

  by_stream.pool_size = 4;
  ASSERT_TRUE(UpdateSubscription(a, "orders", by_stream).ok());
  Subscription missing = by_stream;
  missing.id = "missing";
  EXPECT_EQ(UpdateSubscription(a, "orders", missing).code(), Code::kNotFound);
  ASSERT_TRUE(DeleteSubscription(a, "orders", "all-orders").ok());
  EXPECT_EQ(DeleteSubscription(a, "orders", "all-orders").code(), Code::kNotFound);
  EXPECT_TRUE(WaitFor([&] {
    Result<std::vector<Subscription>> s = ListSubscriptions(tracker, "orders");
    return s.ok() && *s == std::vector<Subscription>{by_stream};
  }));

  // Every change was notified to the trackers, with the subscription.
  std::vector<std::pair<TrackerKind, std::string>> notices;
  ASSERT_TRUE(WaitFor([&] {
    Result<Delivery> d = tracker.Receive(milliseconds(100));
    if (d.ok()) {
      if (const Message* m = std::get_if<Message>(&*d)) {
        Result<TrackerDelivery> n = AsTrackerDelivery(*m);
        if (n.ok()) {
          Result<Subscription> s = DecodeSubscription(n->notice.data);
          EXPECT_TRUE(s.ok());
          if (s.ok()) notices.emplace_back(n->notice.kind, s->id);
        }
      }
    }
    return notices.size() >= 4;
  }));
  EXPECT_EQ(notices, (std::vector<std::pair<TrackerKind, std::string>>{
                         {TrackerKind::kCreated, "one-order"},
                         {TrackerKind::kCreated, "all-orders"},
                         {TrackerKind::kUpdated, "one-order"},
                         {TrackerKind::kDeleted, "all-orders"}}));
}

// ---- the store leader ---------------------------------------------------------

class StoreLeaderMeshTest : public EventStoreMeshTest {
 protected:
  std::unique_ptr<StoreLeader> Candidate(int i, const std::string& store = "orders") {
    StoreLeaderOptions o;
    o.client = OptionsFor(i, "candidate");
    o.client.call_timeout = milliseconds(1000);
    o.store = store;
    o.reconcile_interval = milliseconds(300);
    o.lease = milliseconds(400);  // below these tests' failure detection (0.5 s)
    Result<std::unique_ptr<StoreLeader>> l = StoreLeader::Start(o);
    if (!l.ok()) throw std::runtime_error("candidate: " + l.status().ToString());
    return std::move(l.value());
  }
  // The index of the one active candidate, or -1 unless exactly one is.
  static int ActiveOne(const std::vector<std::unique_ptr<StoreLeader>>& candidates) {
    int active = -1;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (!candidates[i] || !candidates[i]->IsActive()) continue;
      if (active != -1) return -1;
      active = static_cast<int>(i);
    }
    return active;
  }
  int Members(Client& c, const std::string& sub) { return EmitterCount(c, sub); }
};

TEST_F(StoreLeaderMeshTest, OneCandidateLeadsAndSavesTheDefaultSubscriptionOnce) {
  // A tracker of the subscriptions hears every save of "$all".
  Client tracker = Connect(1, "tracker");
  ASSERT_TRUE(JoinTrackers(tracker, "orders", std::string(kSubscriptionsFeature)).ok());
  ASSERT_TRUE(WaitFor([&] {
    Result<std::vector<MemberId>> m =
        TrackerMembers(*admin[0], "orders", std::string(kSubscriptionsFeature));
    return m.ok() && m->size() == 1;
  }));
  std::vector<std::unique_ptr<StoreLeader>> candidates;
  for (int i = 0; i < 3; ++i) candidates.push_back(Candidate(i));
  Client& view = *admin[0];
  int leader = -1;
  ASSERT_TRUE(WaitFor([&] {
    leader = ActiveOne(candidates);
    return leader >= 0 &&
           candidates[leader]->Pools() == std::map<std::string, uint32_t>{{"$all", 1}};
  }));
  EXPECT_TRUE(WaitFor([&] { return Members(view, "$all") == 1; }));
  Result<StoreLeaderInfo> who = StoreLeaderOf(view, "orders");
  ASSERT_TRUE(WaitFor([&] {
    who = StoreLeaderOf(view, "orders");
    return who.ok() && who->active;
  }));
  EXPECT_EQ(who->holder, candidates[leader]->self());
  EXPECT_EQ(StoreLeaderOf(view, "users").status().code(), Code::kNotFound);

  // Hand the leadership on twice: every activation finds "$all" saved, and
  // saves no second one.
  uint64_t activations = 0;
  for (int round = 0; round < 2; ++round) {
    activations += candidates[leader]->activations();
    candidates[leader].reset();  // a graceful stop releases the name
    ASSERT_TRUE(WaitFor([&] {
      leader = ActiveOne(candidates);
      return leader >= 0;
    })) << "round "
        << round;
  }
  activations += candidates[leader]->activations();
  EXPECT_EQ(activations, 3u);
  Result<std::vector<Subscription>> subs = ListSubscriptions(view, "orders", true);
  ASSERT_TRUE(subs.ok());
  EXPECT_EQ(*subs, std::vector<Subscription>{DefaultSubscription()});
  // Saved once: one "created $all" notice over the three activations.
  int created = 0;
  while (true) {
    Result<Delivery> d = tracker.Receive(milliseconds(300));
    if (!d.ok()) break;
    const Message* m = std::get_if<Message>(&*d);
    if (m == nullptr) continue;
    Result<TrackerDelivery> n = AsTrackerDelivery(*m);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    Result<Subscription> sub = DecodeSubscription(n->notice.data);
    ASSERT_TRUE(sub.ok());
    EXPECT_EQ(n->notice.kind, TrackerKind::kCreated);
    EXPECT_EQ(sub->id, "$all");
    ++created;
  }
  EXPECT_EQ(created, 1);
}

TEST_F(StoreLeaderMeshTest, PoolsFollowTheSubscriptions) {
  Client writer = Connect(0, "writer");
  Subscription sub = Sub("big-orders", SubscriptionType::kEventType, "order_placed", 3);
  ASSERT_TRUE(CreateSubscription(writer, "orders", sub).ok());  // before any leader
  std::vector<std::unique_ptr<StoreLeader>> candidates;
  candidates.push_back(Candidate(1));
  ASSERT_TRUE(WaitFor([&] {
    return candidates[0]->Pools() ==
           std::map<std::string, uint32_t>{{"$all", 1}, {"big-orders", 3}};
  }));
  EXPECT_TRUE(WaitFor([&] { return Members(writer, "big-orders") == 3; }));
  Result<std::optional<std::vector<std::string>>> names =
      RetrieveEmitters(writer, "orders", "big-orders");
  EXPECT_TRUE(WaitFor([&] {
    names = RetrieveEmitters(writer, "orders", "big-orders");
    return names.ok() && names->has_value() && (*names)->size() == 3;
  }));

  Subscription more = Sub("streams", SubscriptionType::kStream, "orders-1", 2);
  ASSERT_TRUE(CreateSubscription(writer, "orders", more).ok());
  EXPECT_TRUE(WaitFor([&] { return candidates[0]->Pools().count("streams") == 1; }));
  sub.pool_size = 1;
  ASSERT_TRUE(UpdateSubscription(writer, "orders", sub).ok());
  EXPECT_TRUE(WaitFor([&] { return candidates[0]->Pools()["big-orders"] == 1; }));
  EXPECT_TRUE(WaitFor([&] { return Members(writer, "big-orders") == 1; }));
  ASSERT_TRUE(DeleteSubscription(writer, "orders", "streams").ok());
  EXPECT_TRUE(WaitFor([&] { return candidates[0]->Pools().count("streams") == 0; }));
  EXPECT_TRUE(WaitFor([&] { return Members(writer, "streams") == 0; }));

  // The pool's emitters carry events to subscribers of the subscription.
  Client subscriber = Connect(2, "subscriber");
  ASSERT_TRUE(subscriber.Subscribe(SubscriptionTopic("orders", "big-orders")).ok());
  ASSERT_TRUE(DeliverEvent(writer, "orders", "big-orders", MakeEvent(7)).ok());
  std::optional<Event> got;
  ASSERT_TRUE(WaitFor([&] {
    Result<Delivery> d = subscriber.Receive(milliseconds(100));
    if (d.ok()) {
      if (const Message* m = std::get_if<Message>(&*d)) {
        if (Result<Event> e = AsSubscriptionEvent(*m, "orders", "big-orders"); e.ok()) got = *e;
      }
    }
    return got.has_value();
  }));
  EXPECT_EQ(*got, MakeEvent(7));
}

TEST_F(StoreLeaderMeshTest, WhenTheLeadersNodeDiesAnotherTakesOverAndEveryEventIsDelivered) {
  StartLate();
  // Candidates on n2, n3 and n4; the writer and the subscriber on n1.
  std::vector<std::unique_ptr<StoreLeader>> candidates(kBrokers);
  for (int i = 1; i < kBrokers; ++i) candidates[i] = Candidate(i);
  int leader = -1;
  ASSERT_TRUE(WaitFor([&] {
    leader = ActiveOne(candidates);
    return leader >= 0 && !candidates[leader]->Pools().empty();
  }));
  Client subscriber = Connect(0, "subscriber");
  ASSERT_TRUE(subscriber.Subscribe(SubscriptionTopic("orders", "$all")).ok());

  constexpr int kEvents = 300;
  std::atomic<int> written{0};
  std::atomic<bool> writer_failed{false};
  std::string writer_error;
  Client writer = Connect(0, "writer");
  // Stopped and joined when it goes out of scope, whichever way the test leaves.
  std::jthread writer_thread([&](std::stop_token stop) {
    for (int i = 0; i < kEvents && !stop.stop_requested(); ++i) {
      Result<MemberId> r = DeliverEvent(writer, "orders", "$all", MakeEvent(i), milliseconds(8000));
      if (!r.ok()) {
        writer_error = "event " + std::to_string(i) + ": " + r.status().ToString();
        writer_failed = true;
        return;
      }
      written = i + 1;
    }
  });
  std::set<std::string> seen;
  auto drain = [&] {
    Result<Delivery> d = subscriber.Receive(milliseconds(20));
    if (!d.ok()) return;
    if (const Message* m = std::get_if<Message>(&*d)) {
      if (Result<Event> e = AsSubscriptionEvent(*m, "orders", "$all"); e.ok())
        seen.insert(e->event_id);
    }
  };
  // Kill the leader's node with events flowing.
  ASSERT_TRUE(WaitFor(
      [&] {
        drain();
        return written >= kEvents / 3 || writer_failed;
      },
      milliseconds(20000)));
  // If the leader is on a voter, two of three voters remain: still a majority.
  Clock::time_point killed = Clock::now();
  mesh.Stop(leader, /*graceful=*/false);
  int next = -1;
  bool took_over = WaitFor(
      [&] {
        drain();
        for (int i = 1; i < kBrokers; ++i) {
          if (i != leader && candidates[i]->IsActive() && !candidates[i]->Pools().empty()) next = i;
        }
        return next >= 0;
      },
      milliseconds(8000));
  long failover_ms =
      static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - killed).count());
  ASSERT_TRUE(took_over);
  std::printf("store leader failover: %ld ms (n%d -> n%d)\n", failover_ms, leader + 1, next + 1);
  // The bound, with the failure detector of these tests (dead after
  // about 0.5 s of silence).
  EXPECT_LT(failover_ms, 2000);

  EXPECT_TRUE(WaitFor(
      [&] {
        drain();
        return written == kEvents || writer_failed;
      },
      milliseconds(30000)));
  writer_thread.join();
  ASSERT_FALSE(writer_failed) << writer_error;
  EXPECT_TRUE(WaitFor([&] {
    drain();
    return seen.size() == static_cast<size_t>(kEvents);
  }));
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEvents));
  candidates[leader].reset();  // its broker is gone; its calls time out
}

TEST_F(StoreLeaderMeshTest, ALeaderCutOffInAMinorityStepsDownAndAnotherLeads) {
  std::vector<std::unique_ptr<StoreLeader>> candidates;
  for (int i = 0; i < 3; ++i) candidates.push_back(Candidate(i));
  int leader = -1;
  ASSERT_TRUE(WaitFor([&] {
    leader = ActiveOne(candidates);
    return leader >= 0 && !candidates[leader]->Pools().empty();
  }));
  std::vector<int> rest;
  for (int i = 0; i < 3; ++i) {
    if (i != leader) rest.push_back(i);
  }
  Clock::time_point cut = Clock::now();
  mesh.Partition({leader}, rest);

  // The majority side declares the cut-off node dead, the registry releases
  // its names, and a candidate there leads. The cut-off leader cannot
  // confirm its name through a minority: its lease lapses and it stops its
  // emitters first, before the registry can give the name to another.
  int next = -1;
  long next_ms = -1, down_ms = -1;
  auto since_cut = [&] {
    return static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - cut).count());
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        if (down_ms < 0 && !candidates[leader]->IsActive()) down_ms = since_cut();
        for (int i : rest) {
          if (next_ms < 0 && candidates[i]->IsActive() && !candidates[i]->Pools().empty()) {
            next = i;
            next_ms = since_cut();
          }
        }
        return next_ms >= 0 && down_ms >= 0;
      },
      milliseconds(15000)))
      << "stepped down after " << down_ms << " ms, next leader after " << next_ms << " ms";
  std::printf("store leader cut off: n%d fenced after %ld ms, n%d leads after %ld ms\n", leader + 1,
              down_ms, next + 1, next_ms);
  EXPECT_LT(next_ms, 2000);
  EXPECT_LE(down_ms, next_ms) << "two leaders ran emitters at once";

  // Healed: still exactly one leader, the one the majority chose.
  mesh.Heal();
  ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }, milliseconds(10000)));
  EXPECT_TRUE(WaitFor([&] { return ActiveOne(candidates) == next; }, milliseconds(5000)));
  Client view = Connect(next, "view");
  EXPECT_TRUE(WaitFor([&] { return Members(view, "$all") == 1; }, milliseconds(5000)));
}

}  // namespace
}  // namespace meshbus::testing
