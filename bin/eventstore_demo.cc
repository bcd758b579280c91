// meshbus-eventstore-demo: the event store's coordination layer (issue 5) on
// a 3-node mesh of real meshbusd processes (scripts/mesh-up.sh; the three are
// the registry's voters). Stores are announced on every node, three leader
// candidates contend and one is activated, trackers on every node print the
// subscriptions' lifecycle, a writer appends events that reach a subscriber
// on another node through random emitters, and then the leader's node is
// killed (SIGKILL): its stores are retired, another candidate takes over,
// and the events keep flowing. Exits 1 if any event was not delivered or no
// candidate took over. Bounded in count and time; every broker it started
// is stopped by its pid.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sdk/eventstore.h"
#include "sdk/store_leader.h"
#include "sdk/store_registry.h"
#include "test/process_mesh.h"

namespace {

using namespace meshbus;
using namespace meshbus::eventstore;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kNodes = 3;
constexpr int kEvents = 600;
constexpr int kKillAfter = 200;              // events, then the leader's node is killed
constexpr milliseconds kWriteInterval(5);    // the writer's pace: about 200 events/s
constexpr milliseconds kStepTimeout(15000);  // any one step of the demo
const std::string kStore = "orders";

std::mutex print_mu;
void Say(const std::string& line) {
  std::lock_guard<std::mutex> lock(print_mu);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}
void Heading(const std::string& text) {
  Say("\n== " + text);
}

long MsSince(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - t).count());
}

// SIGINT/SIGTERM end the demo early, through its usual stops, so that the
// brokers it started are stopped by their pids.
volatile std::sig_atomic_t g_stop = 0;
extern "C" void OnStop(int) {
  g_stop = 1;
}

bool WaitUntil(const std::function<bool()>& cond, milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() >= deadline || g_stop) return false;
    std::this_thread::sleep_for(milliseconds(20));  // poll interval, bounded by the deadline
  }
  return true;
}

// A thread reading one Client's deliveries until stopped.
class Reader {
 public:
  Reader(Client client, std::function<void(Client&, const Delivery&)> handle)
      : client_(std::move(client)), handle_(std::move(handle)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        Result<Delivery> d = client_.Receive(milliseconds(50));
        if (d.ok()) {
          handle_(client_, *d);
        } else if (d.status().code() != Code::kTimeout) {
          return;  // its broker is gone
        }
      }
    });
  }
  ~Reader() {
    stop_ = true;
    thread_.join();
  }

 private:
  Client client_;
  std::function<void(Client&, const Delivery&)> handle_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int Fail(const std::string& why) {
  Say("\nmeshbus-eventstore-demo: FAILED: " + why);
  return 1;
}

int Run() {
  Heading("starting a 3-node mesh of meshbusd processes (voters n1, n2, n3)");
  Result<std::unique_ptr<testing::ProcessMesh>> up = testing::ProcessMesh::Up(kNodes);
  if (!up.ok()) return Fail("mesh-up: " + up.status().ToString());
  testing::ProcessMesh& mesh = **up;
  auto connect = [&](int i, const std::string& name) -> Client {
    Result<Client> c = mesh.Connect(i, name);
    if (!c.ok())
      throw std::runtime_error("connect to n" + std::to_string(i + 1) + ": " +
                               c.status().ToString());
    return std::move(c.value());
  };
  auto options = [&](int i) {
    ClientOptions o;
    o.endpoint = mesh.client_endpoint(i);
    o.call_timeout = milliseconds(1500);
    return o;
  };

  Heading("announcing store '" + kStore + "' on every node, and 'users' on n2");
  std::vector<Client> announcers;
  for (int i = 0; i < kNodes; ++i) {
    announcers.push_back(connect(i, "store-" + kStore));
    StoreConfig c{.store_id = kStore,
                  .data_dir = "/var/lib/meshbus-demo/" + kStore,
                  .mode = StoreMode::kCluster,
                  .timeout_ms = 5000,
                  .writer_pool = 10,
                  .reader_pool = 10,
                  .gateway_pool = 1,
                  .options = {}};
    if (Status s = AnnounceStore(announcers.back(), c); !s.ok()) return Fail(s.ToString());
  }
  StoreConfig users{.store_id = "users",
                    .data_dir = "",
                    .mode = StoreMode::kSingle,
                    .timeout_ms = 5000,
                    .writer_pool = 10,
                    .reader_pool = 10,
                    .gateway_pool = 1,
                    .options = {{"owner", "demo"}}};
  if (Status s = AnnounceStore(announcers[1], users); !s.ok()) return Fail(s.ToString());
  Client view = connect(0, "demo-view");
  if (!WaitUntil([&] { return ListStores(view).ok() && ListStores(view)->size() == 4; },
                 kStepTimeout)) {
    return Fail("n1 never listed the 4 announcements");
  }
  Result<std::vector<StoreEntry>> listed = ListStores(view);
  for (const StoreEntry& e : listed.value()) {
    Say("  " + e.config.store_id + " on " + e.node + " (" +
        std::string(StoreModeName(e.config.mode)) + ", announced by " + e.announcer.ToString() +
        ")");
  }

  Heading("trackers of " + kStore + "/subscriptions on every node, printing what they hear");
  std::vector<std::unique_ptr<Reader>> trackers;
  for (int i = 0; i < kNodes; ++i) {
    Client t = connect(i, "tracker");
    if (Status s = JoinTrackers(t, kStore, std::string(kSubscriptionsFeature)); !s.ok()) {
      return Fail(s.ToString());
    }
    std::string node = t.node();
    trackers.push_back(std::make_unique<Reader>(std::move(t), [node](Client&, const Delivery& d) {
      const Message* m = std::get_if<Message>(&d);
      if (m == nullptr) return;
      Result<TrackerDelivery> n = AsTrackerDelivery(*m);
      if (!n.ok()) return;
      Result<Subscription> sub = DecodeSubscription(n->notice.data);
      Say("  [tracker on " + node + "] " + std::string(TrackerKindName(n->notice.kind)) + " " +
          (sub.ok() ? sub->id + " (pool " + std::to_string(sub->pool_size) + ")" : "?"));
    }));
  }
  if (!WaitUntil(
          [&] {
            auto m = TrackerMembers(view, kStore, std::string(kSubscriptionsFeature));
            return m.ok() && m->size() == kNodes;
          },
          kStepTimeout)) {
    return Fail("the trackers never joined everywhere");
  }

  Heading("three leader candidates for " + kStore + ", one per node");
  std::vector<std::unique_ptr<StoreLeader>> candidates;
  for (int i = 0; i < kNodes; ++i) {
    StoreLeaderOptions o{options(i), kStore, milliseconds(500)};
    Result<std::unique_ptr<StoreLeader>> c = StoreLeader::Start(o);
    if (!c.ok()) return Fail(c.status().ToString());
    candidates.push_back(std::move(*c));
  }
  int leader = -1;
  auto active_one = [&] {
    int n = 0;
    for (int i = 0; i < kNodes; ++i) {
      if (candidates[i] && candidates[i]->IsActive() && !candidates[i]->Pools().empty()) {
        leader = i;
        ++n;
      }
    }
    return n == 1;
  };
  if (!WaitUntil(active_one, kStepTimeout)) return Fail("no candidate was activated");
  Say("  leader: n" + std::to_string(leader + 1) + " (" + candidates[leader]->self().ToString() +
      "), pools: $all=" + std::to_string(candidates[leader]->Pools()["$all"]));

  Heading("a subscription 'big-orders' (event type order_placed, 2 emitters)");
  Subscription big;
  big.id = "big-orders";
  big.type = SubscriptionType::kEventType;
  big.selector = "order_placed";
  big.name = "big orders";
  big.pool_size = 2;
  if (Status s = CreateSubscription(view, kStore, big); !s.ok() && s.code() != Code::kExists) {
    return Fail(s.ToString());
  }
  if (!WaitUntil([&] { return candidates[leader]->Pools().count("big-orders") == 1; },
                 kStepTimeout)) {
    return Fail("the leader never started the big-orders pool");
  }
  Say("  the leader runs pools: $all=1, big-orders=2");

  // The writer and the subscriber are on the two nodes that survive.
  const int writer_node = (leader + 1) % kNodes;
  const int subscriber_node = (leader + 2) % kNodes;
  Heading("a writer on n" + std::to_string(writer_node + 1) + " appends " +
          std::to_string(kEvents) +
          " events to $all, and those big-orders selects to it too; a "
          "subscriber on n" +
          std::to_string(subscriber_node + 1) + " receives both");
  std::mutex seen_mu;
  std::set<std::string> seen, seen_big;
  uint64_t repeats = 0;
  Client sub_client = connect(subscriber_node, "subscriber");
  for (const std::string& sub : {std::string("$all"), big.id}) {
    if (Status s = sub_client.Subscribe(SubscriptionTopic(kStore, sub)); !s.ok()) {
      return Fail(s.ToString());
    }
  }
  Reader subscriber(std::move(sub_client), [&](Client&, const Delivery& d) {
    const Message* m = std::get_if<Message>(&d);
    if (m == nullptr) return;
    std::lock_guard<std::mutex> lock(seen_mu);
    if (Result<Event> e = AsSubscriptionEvent(*m, kStore, "$all"); e.ok()) {
      if (!seen.insert(e->event_id).second) ++repeats;
    } else if (Result<Event> b = AsSubscriptionEvent(*m, kStore, big.id); b.ok()) {
      if (!seen_big.insert(b->event_id).second) ++repeats;
    }
  });
  auto seen_count = [&] {
    std::lock_guard<std::mutex> lock(seen_mu);
    return seen.size();
  };

  std::atomic<int> written{0}, written_big{0};
  std::atomic<bool> writer_failed{false};
  std::map<std::string, int> by_emitter_node;
  std::mutex emitter_mu;
  Client w = connect(writer_node, "writer");
  // Stopped and joined when it goes out of scope, whichever way Run leaves.
  std::jthread writer([&](std::stop_token stop) {
    for (int i = 0; i < kEvents && !g_stop && !stop.stop_requested(); ++i) {
      Event e;
      e.event_id = "evt-" + std::to_string(i);
      e.event_type = i % 3 == 0 ? "order_placed" : "order_paid";
      e.stream_id = "order-" + std::to_string(i / 3);
      e.version = i % 3;
      e.data = "{\"order\":" + std::to_string(i / 3) + "}";
      e.data_content_type = "application/json";
      auto now = std::chrono::system_clock::now().time_since_epoch();
      e.epoch_us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
      e.timestamp_ms = e.epoch_us / 1000;
      Result<MemberId> by = DeliverEvent(w, kStore, "$all", e, milliseconds(10000));
      if (!by.ok()) {
        Say("  writer: event " + e.event_id + ": " + by.status().ToString());
        writer_failed = true;
        return;
      }
      {
        std::lock_guard<std::mutex> lock(emitter_mu);
        ++by_emitter_node[by->node];
      }
      if (Selects(big, e)) {
        Result<MemberId> b = DeliverEvent(w, kStore, big.id, e, milliseconds(10000));
        if (!b.ok()) {
          Say("  writer: event " + e.event_id + " to " + big.id + ": " + b.status().ToString());
          writer_failed = true;
          return;
        }
        ++written_big;
      }
      written = i + 1;
      std::this_thread::sleep_for(kWriteInterval);  // the writer's pace, not a wait
    }
  });

  if (!WaitUntil([&] { return written >= kKillAfter || writer_failed; }, kStepTimeout * 2)) {
    writer_failed = true;
  }
  Say("  " + std::to_string(written.load()) + " written, " + std::to_string(seen_count()) +
      " received so far");

  Heading("kill -9 the leader's node, n" + std::to_string(leader + 1) +
          " (its stores are retired, another candidate takes over)");
  Client observer = connect(subscriber_node, "demo-observer");  // n1 may be the one killed
  Result<StoreMonitorStart> watch = SubscribeStoreEvents(observer);
  Clock::time_point killed = Clock::now();
  mesh.Signal(leader, SIGKILL);
  int next = -1;
  bool took_over = WaitUntil(
      [&] {
        for (int i = 0; i < kNodes; ++i) {
          if (i != leader && candidates[i]->IsActive() && candidates[i]->Pools().size() == 2) {
            next = i;
          }
        }
        return next >= 0;
      },
      kStepTimeout);
  long failover_ms = MsSince(killed);
  if (!took_over) return Fail("no candidate took over from n" + std::to_string(leader + 1));
  Say("  n" + std::to_string(next + 1) + " is the leader " + std::to_string(failover_ms) +
      " ms after the kill, with pools $all and big-orders running");
  if (watch.ok()) {
    int retired = 0;
    Clock::time_point deadline = Clock::now() + milliseconds(5000);
    while (retired < 1 && Clock::now() < deadline) {
      Result<Delivery> d = observer.Receive(milliseconds(100));
      if (!d.ok()) continue;
      if (const NameEvent* e = std::get_if<NameEvent>(&*d)) {
        if (Result<StoreEvent> s = AsStoreEvent(*e); s.ok()) {
          Say("  store event: " + std::string(StoreEventKindName(s->kind)) + " " +
              s->entry.config.store_id + " on " + s->entry.node);
          if (s->kind == StoreEventKind::kRetired) ++retired;
        }
      }
    }
  }
  if (Result<std::vector<StoreEntry>> now = ListStores(observer); now.ok()) {
    std::string list;
    for (const StoreEntry& e : *now) list += " " + e.config.store_id + "@" + e.node;
    Say("  stores now:" + list);
  }

  Heading("the writer goes on to " + std::to_string(kEvents) + " events");
  writer.join();
  if (g_stop) return Fail("stopped by a signal");
  if (writer_failed) return Fail("the writer could not deliver every event");
  WaitUntil([&] { return seen_count() == static_cast<size_t>(kEvents); }, kStepTimeout);
  {
    std::lock_guard<std::mutex> lock(emitter_mu);
    std::string spread;
    for (const auto& [node, n] : by_emitter_node) spread += " " + node + "=" + std::to_string(n);
    Say("  emitters that took the events, by node:" + spread);
  }
  Say("  " + std::to_string(seen_count()) + " of " + std::to_string(kEvents) +
      " events received on n" + std::to_string(subscriber_node + 1) + " (" +
      std::to_string(repeats) + " repeats, dropped by event id)");
  size_t big_seen = 0;
  WaitUntil(
      [&] {
        std::lock_guard<std::mutex> lock(seen_mu);
        big_seen = seen_big.size();
        return big_seen == static_cast<size_t>(written_big.load());
      },
      kStepTimeout);
  Say("  " + std::to_string(big_seen) + " of " + std::to_string(written_big.load()) +
      " order_placed events received on n" + std::to_string(subscriber_node + 1) +
      " through big-orders");
  if (seen_count() != static_cast<size_t>(kEvents)) return Fail("events were lost");
  if (big_seen != static_cast<size_t>(written_big.load())) {
    return Fail("big-orders events were lost");
  }

  Heading("stopping: candidates, trackers, then every broker by its pid");
  candidates[leader].reset();  // its broker is gone: its calls time out
  candidates.clear();
  trackers.clear();
  Say("\nmeshbus-eventstore-demo: OK");
  return 0;
}

}  // namespace

int main() {
  // Whichever thread takes the signal, the flag is the process's.
  struct sigaction action {};
  action.sa_handler = OnStop;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  try {
    return Run();
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
}
