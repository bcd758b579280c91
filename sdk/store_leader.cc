#include "sdk/store_leader.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "sdk/emitter.h"
#include "sdk/eventstore.h"

namespace meshbus::eventstore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// The leader name's metadata: what `meshbus store-leader` shows.
constexpr std::string_view kStarting = "starting";
constexpr std::string_view kActive = "active";
// How long the loop waits for a delivery before it looks at its timers.
constexpr milliseconds kPollInterval(50);
// After a confirmation that got no clear answer (a timeout), the next one
// comes this soon; this many in a row and the leader steps down.
constexpr milliseconds kRecheckInterval(100);
constexpr int kMaxUnclearChecks = 2;

void Warn(const std::string& store, const std::string& what) {
  std::fprintf(stderr, "meshbus store leader %s: %s\n", store.c_str(), what.c_str());
}

struct Pool {
  Subscription subscription;
  std::vector<std::unique_ptr<Emitter>> emitters;

  bool whole() const {
    if (emitters.size() != subscription.pool_size) return false;
    for (const auto& e : emitters) {
      if (!e->healthy()) return false;
    }
    return true;
  }
};

// Stops every emitter at once, then waits for them all.
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
  // The candidate's session: holds the leader name, follows the trackers.
  // Only the loop thread uses it (and replaces it when its session is gone).
  std::optional<Client> control;
  MemberId self;  // control's id, for other threads; guarded by mu
  std::atomic<bool> stop{false};
  std::atomic<bool> active{false};
  std::atomic<uint64_t> activations{0};
  mutable std::mutex mu;              // guards pools' map (for Pools()) and self
  std::map<std::string, Pool> pools;  // subscription id -> its pool; changed by the loop only
  std::thread thread;
  std::once_flag joined;

  // When this session last confirmed it holds the name (steady clock, ns);
  // the lease watchdog fences the pools when that is over options.lease ago.
  std::atomic<int64_t> confirmed_at{0};
  std::atomic<bool> fenced{false};
  std::thread watchdog;

  bool holder = false;                 // this session holds the leader name (as far as it knows)
  bool activated = false;              // Activate() completed for this holding
  bool name_free = true;               // a release was seen, or nothing is known: try at once
  int unclear_checks = 0;              // checks in a row that got no clear answer
  Clock::time_point next_check{};      // the next confirmation (or acquisition attempt)
  Clock::time_point next_reconcile{};  // the next re-read of the subscriptions

  explicit Impl(StoreLeaderOptions o) : options(std::move(o)) {}

  const std::string& store() const { return options.store; }
  std::string leader_name() const { return LeaderName(options.store); }
  Client& c() { return *control; }

  // A new control session: joins the trackers and watches the leader name,
  // so that no release is missed from here on.
  Status Connect() {
    ClientOptions o = options.client;
    o.name = "store-leader-" + store();
    Result<Client> client = Client::Connect(o);
    if (!client.ok()) return client.status();
    control.emplace(std::move(client.value()));
    {
      std::lock_guard<std::mutex> lock(mu);
      self = control->self();
    }
    if (Status s = JoinTrackers(c(), store(), std::string(kSubscriptionsFeature)); !s.ok()) {
      return s;
    }
    if (Result<NamesMonitorStart> w = c().MonitorNames(leader_name()); !w.ok()) return w.status();
    holder = false;
    name_free = true;
    unclear_checks = 0;
    return Status::Ok();
  }

  void Run() {
    while (!stop) {
      if (!control || control->session_lost()) {
        // The broker restarted or timed this session out: its name and
        // memberships are gone with it. Start again on a new one.
        Deactivate();
        control.reset();
        if (Status s = Connect(); !s.ok()) {
          Warn(store(), "cannot connect: " + s.ToString());
          control.reset();
          Pause(options.reconcile_interval);
          continue;
        }
      }
      Clock::time_point now = Clock::now();
      if (!holder && (name_free || now >= next_check)) TryAcquire();
      if (holder && now >= next_check) Check();
      if (active && Clock::now() >= next_reconcile) {
        next_reconcile = Clock::now() + options.reconcile_interval;
        Reconcile();
      }
      if (stop) break;
      Result<Delivery> d = c().Receive(kPollInterval);
      if (d.ok()) {
        Handle(*d);
      } else if (d.status().code() != Code::kTimeout) {
        Pause(kPollInterval);  // the broker is not answering: do not spin
      }
    }
    Deactivate();
    // Ending the session releases the name (no Unregister first: with a
    // broker that is down, that call would only wait out its deadline).
    if (control) control->Close();
  }

  // Waits up to `d`, in steps, returning early on Stop().
  void Pause(milliseconds d) {
    Clock::time_point until = Clock::now() + d;
    while (!stop && Clock::now() < until) std::this_thread::sleep_for(kPollInterval);
  }

  void Handle(const Delivery& d) {
    if (const NameEvent* e = std::get_if<NameEvent>(&d)) {
      if (e->entry.name != leader_name()) return;
      if (e->kind == NameEventKind::kUnregistered) {
        name_free = true;
        if (e->entry.holder == c().self()) LostName();
      } else if (e->entry.holder != c().self() && holder) {
        // Maybe stale (queued before our own registration): ask the leader.
        next_check = Clock::now();
      }
      return;
    }
    if (const Message* m = std::get_if<Message>(&d)) {
      Result<TrackerDelivery> t = AsTrackerDelivery(*m);
      if (!t.ok() || t->store != store() || t->notice.feature != kSubscriptionsFeature) return;
      // The records are the truth (a notice may be stale): read them all.
      if (active) Reconcile();
    }
  }

  // The name was ours when a call sent at `asked` was answered: the lease
  // runs from the asking, not the answer.
  void Confirmed(Clock::time_point asked) { confirmed_at = asked.time_since_epoch().count(); }

  void TryAcquire() {
    name_free = false;
    next_check = Clock::now() + options.reconcile_interval;
    Clock::time_point asked = Clock::now();
    Status s = c().Register(leader_name(), kStarting);
    if (s.ok()) {
      holder = true;
      unclear_checks = 0;
      Confirmed(asked);
      Activate();
    } else if (s.code() != Code::kTaken) {
      Warn(store(), "cannot contend for the leadership: " + s.ToString());
    }
  }

  void Activate() {
    // Once per store: a second activation finds it and saves nothing.
    Subscription all = DefaultSubscription();
    Status saved = c().CreateRecord(SubscriptionKey(store(), all.id), EncodeSubscription(all));
    if (saved.ok()) {
      Notify(c(), store(), TrackerKind::kCreated, std::string(kSubscriptionsFeature),
             EncodeSubscription(all));
    } else if (saved.code() != Code::kExists) {
      Warn(store(), "cannot save the default subscription: " + saved.ToString());
      return;  // Check() tries again
    }
    if (!Reconcile()) return;
    Clock::time_point asked = Clock::now();
    Status marked = c().Register(leader_name(), kActive);
    if (marked.code() == Code::kTaken) {
      LostName();
      return;
    }
    if (marked.ok()) {
      Confirmed(asked);  // a write only the holder could make
    } else {
      Warn(store(), "cannot mark the leadership active: " + marked.ToString());
    }
    activated = true;
    fenced = false;
    active = true;
    next_reconcile = Clock::now() + options.reconcile_interval;
    next_check = Clock::now() + ConfirmInterval();
    ++activations;
  }

  // Confirmations come three times per lease, so that one slow answer does
  // not let it lapse.
  milliseconds ConfirmInterval() const { return std::max(milliseconds(10), options.lease / 3); }

  // The lease watchdog: an active leader whose last confirmation is older
  // than the lease stops its emitters at once, even while the loop thread
  // is blocked in a call to a registry it cannot reach.
  void Watch() {
    while (!stop) {
      std::this_thread::sleep_for(milliseconds(10));  // the watchdog's tick
      int64_t age_ns = Clock::now().time_since_epoch().count() - confirmed_at.load();
      if (!active || age_ns <= std::chrono::nanoseconds(options.lease).count()) continue;
      std::lock_guard<std::mutex> lock(mu);
      fenced = true;
      active = false;
      for (auto& [id, pool] : pools) {
        for (auto& e : pool.emitters) e->RequestStop();
      }
    }
  }

  // Makes the pools exactly the store's subscriptions (as the registry's
  // leader has them), each whole; false when they could not be read.
  bool Reconcile() {
    Result<std::vector<Subscription>> subs = ListSubscriptions(c(), store(), /*consistent=*/true);
    if (!subs.ok()) {
      Warn(store(), "cannot read the subscriptions: " + subs.status().ToString());
      return false;
    }
    std::map<std::string, Subscription> want;
    for (Subscription& s : *subs) want.emplace(s.id, std::move(s));
    std::vector<std::string> stale;
    for (const auto& [id, pool] : pools) {
      auto w = want.find(id);
      if (w == want.end() || !(w->second == pool.subscription) || !pool.whole()) {
        stale.push_back(id);
      }
    }
    for (const std::string& id : stale) StopPool(id);
    for (const auto& [id, sub] : want) {
      if (stop) break;
      if (pools.count(id) == 0) StartPool(sub);
    }
    return true;
  }

  void StartPool(const Subscription& sub) {
    Result<std::vector<std::string>> names = PersistEmitters(c(), store(), sub.id, sub.pool_size);
    if (!names.ok()) {
      Warn(store(),
           "cannot keep the emitter names of " + sub.id + ": " + names.status().ToString());
      names = EmitterNames(store(), sub.id, sub.pool_size);
    }
    Pool pool{sub, {}};
    for (const std::string& name : *names) {
      if (stop) break;
      Result<std::unique_ptr<Emitter>> e = Emitter::Start(options.client, store(), sub, name);
      if (!e.ok()) {
        // The pool stays short; the next check starts it again.
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

  // Confirms, linearizably, that this session still holds the name (a leader
  // cut off from the registry's majority cannot, and steps down), then
  // activates if it has not yet, or repairs the pools.
  void Check() {
    next_check = Clock::now() + (activated ? ConfirmInterval() : options.reconcile_interval);
    if (stop) return;
    Clock::time_point asked = Clock::now();
    Result<NameInfo> who = c().WhereisConsistent(leader_name());
    if (who.ok() && who->holder == c().self()) {
      Confirmed(asked);
      unclear_checks = 0;
      if (!activated) {
        Activate();
      } else if (fenced) {
        // The lease lapsed and is back: the fenced emitters are replaced.
        Reconcile();
        fenced = false;
        active = true;
      }
      return;
    }
    Code code = who.ok() ? Code::kTaken : who.status().code();
    bool clear = code == Code::kTaken || code == Code::kNotRegistered || code == Code::kNoLeader;
    if (!clear && ++unclear_checks < kMaxUnclearChecks) {
      next_check = Clock::now() + kRecheckInterval;
      return;
    }
    LostName();
  }

  void LostName() {
    holder = false;
    activated = false;
    unclear_checks = 0;
    // Registering again is idempotent: if the name is still ours, the next
    // TryAcquire gets it back at once.
    name_free = true;
    next_check = Clock::now() + options.reconcile_interval;
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
  auto impl = std::make_unique<Impl>(std::move(options));
  if (Status s = impl->Connect(); !s.ok()) return s;
  Impl* raw = impl.get();
  raw->thread = std::thread([raw] { raw->Run(); });
  raw->watchdog = std::thread([raw] { raw->Watch(); });
  return std::unique_ptr<StoreLeader>(new StoreLeader(std::move(impl)));
}

StoreLeader::StoreLeader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreLeader::~StoreLeader() {
  Stop();
}

void StoreLeader::Stop() {
  impl_->stop = true;
  std::call_once(impl_->joined, [this] {
    impl_->thread.join();
    impl_->watchdog.join();
  });
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
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->self;
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
