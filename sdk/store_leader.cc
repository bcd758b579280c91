#include "sdk/store_leader.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "sdk/eventstore.h"

namespace meshbus::eventstore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// The leader name's metadata: what `meshbus store-leader` shows.
constexpr std::string_view kStarting = "starting";
constexpr std::string_view kActive = "active";
// How long a loop waits for a delivery before it looks at its stop flag.
constexpr milliseconds kPollInterval(50);

void Warn(const std::string& store, const std::string& what) {
  std::fprintf(stderr, "meshbus store leader %s: %s\n", store.c_str(), what.c_str());
}

// One emitter: its own session, on its own thread, forwarding what the
// emitter group sends it to the subscription's topic.
class Emitter {
 public:
  static Result<std::unique_ptr<Emitter>> Start(const ClientOptions& base, const std::string& store,
                                                const std::string& subscription,
                                                const std::string& name) {
    ClientOptions o = base;
    o.name = name;
    Result<Client> c = Client::Connect(o);
    if (!c.ok()) return c.status();
    if (Status s = JoinEmitters(*c, store, subscription); !s.ok()) return s;
    return std::unique_ptr<Emitter>(new Emitter(std::move(c.value()), store, subscription));
  }
  // Asks the thread to stop; Join() waits for it.
  void RequestStop() { stop_ = true; }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  ~Emitter() {
    RequestStop();
    Join();
  }

 private:
  Emitter(Client client, std::string store, std::string subscription)
      : client_(std::move(client)),
        store_(std::move(store)),
        subscription_(std::move(subscription)) {
    thread_ = std::thread([this] { Run(); });
  }

  void Handle(const Delivery& d) {
    const Message* m = std::get_if<Message>(&d);
    if (m == nullptr) return;
    Result<EmitterDelivery> e = AsEmitterDelivery(client_, *m);
    if (!e.ok()) {
      // A request that is ours but does not decode: the writer learns why.
      if (e.status().code() != Code::kNotFound && m->kind == MessageKind::kRequest) {
        client_.ReplyAsync(*m, e.status().ToString());
      }
      return;
    }
    ForwardToSubscribers(client_, *m, *e);
  }

  void Run() {
    while (!stop_) {
      Result<Delivery> d = client_.Receive(kPollInterval);
      if (d.ok()) {
        Handle(*d);
      } else if (d.status().code() != Code::kTimeout) {
        std::this_thread::sleep_for(kPollInterval);  // the broker is gone: do not spin
      }
    }
    // Leave first, so no new event is sent here, then forward what came
    // before the leave: an event handed to this emitter is never dropped.
    LeaveEmitters(client_, store_, subscription_);
    for (;;) {
      Result<Delivery> d = client_.Receive(milliseconds(0));
      if (!d.ok()) break;
      Handle(*d);
    }
    client_.Close();
  }

  Client client_;
  std::string store_, subscription_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Pool {
  Subscription subscription;
  std::vector<std::unique_ptr<Emitter>> emitters;
};

void StopPools(std::vector<Pool>& pools) {
  for (Pool& p : pools) {
    for (auto& e : p.emitters) e->RequestStop();
  }
  for (Pool& p : pools) {
    for (auto& e : p.emitters) e->Join();
  }
  pools.clear();
}

}  // namespace

struct StoreLeader::Impl {
  StoreLeaderOptions options;
  Client control;  // the candidate's session: holds the leader name, follows the trackers
  std::atomic<bool> stop{false};
  std::atomic<bool> active{false};
  std::atomic<uint64_t> activations{0};
  mutable std::mutex mu;              // guards pools for Pools()
  std::map<std::string, Pool> pools;  // subscription id -> its pool; the loop thread's
  std::thread thread;

  bool holder = false;  // this session holds the leader name
  Clock::time_point next_check{};
  bool name_free = true;  // a release was seen (or nothing known): try at once

  Impl(StoreLeaderOptions o, Client c) : options(std::move(o)), control(std::move(c)) {}

  const std::string& store() const { return options.store; }
  std::string leader_name() const { return LeaderName(options.store); }

  void Run() {
    if (Status s = JoinTrackers(control, store(), std::string(kSubscriptionsFeature)); !s.ok()) {
      Warn(store(), "cannot follow the subscriptions: " + s.ToString());
    }
    Result<NamesMonitorStart> watch = control.MonitorNames(leader_name());
    if (!watch.ok()) Warn(store(), "cannot watch the leader name: " + watch.status().ToString());
    while (!stop) {
      Clock::time_point now = Clock::now();
      if (!holder && (name_free || now >= next_check)) TryAcquire();
      if (holder && now >= next_check) Check();
      Result<Delivery> d = control.Receive(kPollInterval);
      if (d.ok()) {
        Handle(*d);
      } else if (d.status().code() != Code::kTimeout) {
        std::this_thread::sleep_for(kPollInterval);  // the broker is gone: do not spin
      }
    }
    Deactivate();
    if (holder) control.Unregister(leader_name());
    control.Close();
  }

  void Handle(const Delivery& d) {
    if (const NameEvent* e = std::get_if<NameEvent>(&d)) {
      if (e->entry.name != leader_name()) return;
      if (e->kind == NameEventKind::kUnregistered) {
        name_free = true;
        if (e->entry.holder == control.self()) LostName();
      } else if (e->entry.holder != control.self() && holder) {
        LostName();  // released while we could not hear, and taken by another
      }
      return;
    }
    if (const Message* m = std::get_if<Message>(&d)) {
      Result<TrackerDelivery> t = AsTrackerDelivery(*m);
      if (!t.ok() || t->store != store() || t->notice.feature != kSubscriptionsFeature) return;
      if (active) OnSubscriptionNotice(t->notice);
    }
  }

  void TryAcquire() {
    name_free = false;
    next_check = Clock::now() + options.reconcile_interval;
    Status s = control.Register(leader_name(), kStarting);
    if (s.ok()) {
      holder = true;
      Activate();
    } else if (s.code() != Code::kTaken) {
      Warn(store(), "cannot contend for the leadership: " + s.ToString());
    }
  }

  void Activate() {
    // Once per store: a second activation finds it and saves nothing.
    Subscription all = DefaultSubscription();
    Status saved = control.CreateRecord(SubscriptionKey(store(), all.id), EncodeSubscription(all));
    if (saved.ok()) {
      Notify(control, store(), TrackerKind::kCreated, std::string(kSubscriptionsFeature),
             EncodeSubscription(all));
    } else if (saved.code() != Code::kExists) {
      Warn(store(), "cannot save the default subscription: " + saved.ToString());
      return;  // Check() tries again
    }
    if (!Reconcile(/*consistent=*/true)) return;
    if (Status s = control.Register(leader_name(), kActive); !s.ok()) {
      Warn(store(), "cannot mark the leadership active: " + s.ToString());
    }
    active = true;
    ++activations;
  }

  // Makes the pools exactly the store's subscriptions; false when they
  // could not be read.
  bool Reconcile(bool consistent) {
    Result<std::vector<Subscription>> subs = ListSubscriptions(control, store(), consistent);
    if (!subs.ok()) {
      Warn(store(), "cannot read the subscriptions: " + subs.status().ToString());
      return false;
    }
    std::map<std::string, Subscription> want;
    for (Subscription& s : *subs) want.emplace(s.id, std::move(s));
    std::vector<std::string> gone;
    for (const auto& [id, pool] : pools) {
      auto w = want.find(id);
      if (w == want.end() || !(w->second == pool.subscription)) gone.push_back(id);
    }
    for (const std::string& id : gone) StopPool(id);
    for (const auto& [id, sub] : want) {
      if (pools.count(id) == 0) StartPool(sub);
    }
    return true;
  }

  void StartPool(const Subscription& sub) {
    Result<std::vector<std::string>> names =
        PersistEmitters(control, store(), sub.id, sub.pool_size);
    if (!names.ok()) {
      Warn(store(),
           "cannot keep the emitter names of " + sub.id + ": " + names.status().ToString());
      names = EmitterNames(store(), sub.id, sub.pool_size);
    }
    Pool pool{sub, {}};
    for (const std::string& name : *names) {
      Result<std::unique_ptr<Emitter>> e = Emitter::Start(options.client, store(), sub.id, name);
      if (!e.ok()) {
        Warn(store(), "cannot start emitter " + name + ": " + e.status().ToString());
        continue;
      }
      pool.emitters.push_back(std::move(*e));
    }
    std::lock_guard<std::mutex> lock(mu);
    pools[sub.id] = std::move(pool);
  }

  void StopPool(const std::string& id) {
    std::vector<Pool> stopping;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = pools.find(id);
      if (it == pools.end()) return;
      stopping.push_back(std::move(it->second));
      pools.erase(it);
    }
    StopPools(stopping);
  }

  void OnSubscriptionNotice(const TrackerNotice& notice) {
    Result<Subscription> sub = DecodeSubscription(notice.data);
    switch (notice.kind) {
      case TrackerKind::kCreated:
      case TrackerKind::kUpdated:
        // The record is the truth (a notice may be stale): read them all.
        Reconcile(/*consistent=*/true);
        break;
      case TrackerKind::kDeleted:
        if (sub.ok()) StopPool(sub->id);
        Reconcile(/*consistent=*/true);
        break;
    }
  }

  // An active leader confirms it still holds the name (linearizably, so a
  // leader cut off from the registry stops), and re-reads the subscriptions.
  void Check() {
    next_check = Clock::now() + options.reconcile_interval;
    Result<NameInfo> who = control.WhereisConsistent(leader_name());
    if (!who.ok() || who->holder != control.self()) {
      LostName();
      return;
    }
    if (!active) {
      Activate();
    } else {
      Reconcile(/*consistent=*/false);
    }
  }

  void LostName() {
    holder = false;
    Deactivate();
  }

  void Deactivate() {
    active = false;
    std::vector<Pool> stopping;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [id, pool] : pools) stopping.push_back(std::move(pool));
      pools.clear();
    }
    StopPools(stopping);
  }
};

Result<std::unique_ptr<StoreLeader>> StoreLeader::Start(StoreLeaderOptions options) {
  if (Status s = ValidateStoreId(options.store); !s.ok()) return s;
  ClientOptions o = options.client;
  o.name = "store-leader-" + options.store;
  Result<Client> c = Client::Connect(o);
  if (!c.ok()) return c.status();
  auto impl = std::make_unique<Impl>(std::move(options), std::move(c.value()));
  Impl* raw = impl.get();
  raw->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<StoreLeader>(new StoreLeader(std::move(impl)));
}

StoreLeader::StoreLeader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreLeader::~StoreLeader() {
  Stop();
}

void StoreLeader::Stop() {
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
}

bool StoreLeader::IsActive() const {
  return impl_->active;
}

std::map<std::string, uint32_t> StoreLeader::Pools() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::map<std::string, uint32_t> out;
  for (const auto& [id, pool] : impl_->pools) {
    out[id] = static_cast<uint32_t>(pool.emitters.size());
  }
  return out;
}

uint64_t StoreLeader::activations() const {
  return impl_->activations;
}

MemberId StoreLeader::self() const {
  return impl_->control.self();
}

Result<StoreLeaderInfo> StoreLeaderOf(Client& client, const std::string& store) {
  if (Status s = ValidateStoreId(store); !s.ok()) return s;
  Result<NameInfo> n = client.Whereis(LeaderName(store));
  if (!n.ok()) {
    if (n.status().code() == Code::kNotRegistered) {
      return Status::NotFound("store " + store + " has no leader");
    }
    return n.status();
  }
  return StoreLeaderInfo{n->holder, n->metadata == kActive};
}

}  // namespace meshbus::eventstore
