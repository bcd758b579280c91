#include "sdk/eventstore.h"

#include <thread>

namespace meshbus::eventstore {
namespace {

Status CheckSubscription(const std::string& store, const std::string& subscription) {
  if (Status s = ValidateStoreId(store); !s.ok()) return s;
  return ValidateSubscriptionId(subscription);
}
Status CheckFeature(const std::string& store, const std::string& feature) {
  if (Status s = ValidateStoreId(store); !s.ok()) return s;
  return ValidateFeature(feature);
}

// "<store>:<rest>" back into its parts; store ids have no ':'.
bool SplitGroup(const std::string& group, std::string* store, std::string* rest) {
  size_t colon = group.find(':');
  if (colon == std::string::npos) return false;
  *store = group.substr(0, colon);
  *rest = group.substr(colon + 1);
  return true;
}

}  // namespace

Status JoinEmitters(Client& client, const std::string& store, const std::string& subscription) {
  if (Status s = CheckSubscription(store, subscription); !s.ok()) return s;
  return client.Join(std::string(kEmitterScope), EmitterGroup(store, subscription));
}
Status LeaveEmitters(Client& client, const std::string& store, const std::string& subscription) {
  if (Status s = CheckSubscription(store, subscription); !s.ok()) return s;
  return client.Leave(std::string(kEmitterScope), EmitterGroup(store, subscription));
}
Result<std::vector<MemberId>> EmitterMembers(Client& client, const std::string& store,
                                             const std::string& subscription) {
  if (Status s = CheckSubscription(store, subscription); !s.ok()) return s;
  return client.Members(std::string(kEmitterScope), EmitterGroup(store, subscription));
}

Result<MemberId> BroadcastEvent(Client& client, const std::string& store,
                                const std::string& subscription, const Event& event,
                                std::chrono::milliseconds timeout) {
  if (Status s = CheckSubscription(store, subscription); !s.ok()) return s;
  std::string bytes = EncodeEvent(event);
  if (Result<Event> check = DecodeEvent(bytes); !check.ok()) {
    return Status::InvalidArgument(check.status().message());
  }
  Result<Message> answer =
      client.Request(std::string(kEmitterScope), EmitterGroup(store, subscription), bytes, timeout);
  if (!answer.ok()) {
    if (answer.status().code() == Code::kNoResponders) {
      return Status::NoEmitters("no emitters for " + SubscriptionTopic(store, subscription));
    }
    return answer.status();
  }
  if (!answer->payload.empty()) {
    // The emitter could not publish it (its broker is stopping: another
    // emitter may), or refused it (not selected, undecodable: sending it
    // again would not help).
    if (answer->payload.rfind(CodeName(Code::kUnavailable), 0) == 0) {
      return Status::Unavailable("emitter " + answer->from.ToString() + ": " + answer->payload);
    }
    return Status::InvalidArgument("emitter " + answer->from.ToString() +
                                   " refused it: " + answer->payload);
  }
  return answer->from;
}

Result<MemberId> DeliverEvent(Client& client, const std::string& store,
                              const std::string& subscription, const Event& event,
                              std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + timeout;
  // Short enough that a pool started by a new leader is used at once; long
  // enough not to spin on the broker.
  constexpr std::chrono::milliseconds kRetryPause(20);
  constexpr std::chrono::milliseconds kMinAttempt(50);
  Status last = Status::Timeout("no attempt: the timeout is under " +
                                std::to_string(kMinAttempt.count()) + " ms");
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left < kMinAttempt) break;
    Result<MemberId> r = BroadcastEvent(client, store, subscription, event, left);
    if (r.ok()) return r;
    last = r.status();
    Code c = last.code();
    if (c != Code::kNoEmitters && c != Code::kUnavailable && c != Code::kTimeout) return last;
    if (client.session_lost()) return last;  // this writer's own session is gone
    if (c != Code::kTimeout) std::this_thread::sleep_for(kRetryPause);
  }
  return Status::Timeout("no emitter of " + SubscriptionTopic(store, subscription) +
                         " took the event in time (last: " + last.ToString() + ")");
}

std::string_view EmitterTagName(EmitterTag tag) {
  return tag == EmitterTag::kForwardToLocal ? "forward_to_local" : "broadcast";
}

Result<EmitterDelivery> AsEmitterDelivery(const Client& emitter, const Message& message) {
  EmitterDelivery d;
  if (message.kind != MessageKind::kRequest || message.scope != kEmitterScope ||
      !SplitGroup(message.group, &d.store, &d.subscription)) {
    return Status::NotFound("not an event for an emitter group");
  }
  if (!ValidateStoreId(d.store).ok() || !ValidateSubscriptionId(d.subscription).ok()) {
    return Status::BadMessage("emitter group '" + message.group +
                              "' is not <store>:<subscription>");
  }
  Result<Event> e = DecodeEvent(message.payload);
  if (!e.ok()) return e.status();
  d.event = std::move(*e);
  d.tag =
      message.from.node == emitter.node() ? EmitterTag::kForwardToLocal : EmitterTag::kBroadcast;
  return d;
}

Status ForwardToSubscribers(Client& emitter, const Message& message,
                            const EmitterDelivery& delivery) {
  Status published =
      emitter.Publish(SubscriptionTopic(delivery.store, delivery.subscription), message.payload);
  // An empty answer is success; otherwise the writer learns why. Not waited
  // for: a refusal (the writer gave up already) comes later as an Outcome
  // with ticket 0, and nothing could be done about it here.
  Status replied = emitter.ReplyAsync(message, published.ok() ? "" : published.ToString());
  return published.ok() ? replied : published;
}

Result<Event> AsSubscriptionEvent(const Message& message, const std::string& store,
                                  const std::string& subscription) {
  if (message.kind != MessageKind::kPublish ||
      message.topic != SubscriptionTopic(store, subscription)) {
    return Status::NotFound("not an event of " + SubscriptionTopic(store, subscription));
  }
  return DecodeEvent(message.payload);
}

Result<std::vector<std::string>> PersistEmitters(Client& client, const std::string& store,
                                                 const std::string& subscription,
                                                 uint32_t pool_size) {
  if (Status s = CheckSubscription(store, subscription); !s.ok()) return s;
  if (Status s = ValidatePoolSize(pool_size); !s.ok()) return s;
  std::vector<std::string> names = EmitterNames(store, subscription, pool_size);
  if (Status s = client.PutRecord(EmittersKey(store, subscription), EncodeEmitterNames(names));
      !s.ok()) {
    return s;
  }
  return names;
}

Result<std::optional<std::vector<std::string>>> RetrieveEmitters(Client& client,
                                                                 const std::string& store,
                                                                 const std::string& subscription) {
  if (Status s = CheckSubscription(store, subscription); !s.ok()) return s;
  Result<std::string> r = client.GetRecord(EmittersKey(store, subscription));
  if (!r.ok()) {
    if (r.status().code() == Code::kNotFound) return std::optional<std::vector<std::string>>();
    return r.status();
  }
  Result<std::vector<std::string>> names = DecodeEmitterNames(*r);
  if (!names.ok()) return names.status();
  return std::optional<std::vector<std::string>>(std::move(*names));
}

namespace {

Status NotifySubscriptions(Client& client, const std::string& store, TrackerKind kind,
                           const Subscription& subscription) {
  return Notify(client, store, kind, std::string(kSubscriptionsFeature),
                EncodeSubscription(subscription));
}

Status CheckStoreSubscription(const std::string& store, const Subscription& subscription) {
  if (Status s = ValidateStoreId(store); !s.ok()) return s;
  return ValidateSubscription(subscription);
}

}  // namespace

Status CreateSubscription(Client& client, const std::string& store,
                          const Subscription& subscription) {
  if (Status s = CheckStoreSubscription(store, subscription); !s.ok()) return s;
  Status s = client.CreateRecord(SubscriptionKey(store, subscription.id),
                                 EncodeSubscription(subscription));
  if (s.code() == Code::kExists) {
    return Status::Exists("store " + store + " has a subscription " + subscription.id);
  }
  if (!s.ok()) return s;
  return NotifySubscriptions(client, store, TrackerKind::kCreated, subscription);
}

Status UpdateSubscription(Client& client, const std::string& store,
                          const Subscription& subscription) {
  if (Status s = CheckStoreSubscription(store, subscription); !s.ok()) return s;
  const std::string key = SubscriptionKey(store, subscription.id);
  if (Result<std::string> old = client.GetRecord(key, /*consistent=*/true); !old.ok()) {
    if (old.status().code() == Code::kNotFound) {
      return Status::NotFound("store " + store + " has no subscription " + subscription.id);
    }
    return old.status();
  }
  if (Status s = client.PutRecord(key, EncodeSubscription(subscription)); !s.ok()) return s;
  return NotifySubscriptions(client, store, TrackerKind::kUpdated, subscription);
}

Status DeleteSubscription(Client& client, const std::string& store,
                          const std::string& subscription_id) {
  if (Status s = CheckSubscription(store, subscription_id); !s.ok()) return s;
  const std::string key = SubscriptionKey(store, subscription_id);
  Result<std::string> old = client.GetRecord(key, /*consistent=*/true);
  Status s = old.ok() ? client.DeleteRecord(key) : old.status();
  if (s.code() == Code::kNotFound) {
    return Status::NotFound("store " + store + " has no subscription " + subscription_id);
  }
  if (!s.ok()) return s;
  Result<Subscription> gone = DecodeSubscription(*old);
  Subscription notice;
  if (gone.ok()) {
    notice = std::move(*gone);
  } else {
    notice.id = subscription_id;  // a hand-written record: the id is what trackers need
  }
  return NotifySubscriptions(client, store, TrackerKind::kDeleted, notice);
}

Result<std::vector<Subscription>> ListSubscriptions(Client& client, const std::string& store,
                                                    bool consistent,
                                                    std::vector<std::string>* bad_keys) {
  if (Status s = ValidateStoreId(store); !s.ok()) return s;
  Result<std::vector<Record>> records = client.Records(SubscriptionKeyPrefix(store), consistent);
  if (!records.ok()) return records.status();
  std::vector<Subscription> out;
  for (const Record& r : records.value()) {
    Result<Subscription> sub = DecodeSubscription(r.value);
    if (!sub.ok() || SubscriptionKey(store, sub->id) != r.key) {
      if (bad_keys != nullptr) bad_keys->push_back(r.key);
      continue;
    }
    out.push_back(std::move(*sub));
  }
  return out;
}

Status JoinTrackers(Client& client, const std::string& store, const std::string& feature) {
  if (Status s = CheckFeature(store, feature); !s.ok()) return s;
  return client.Join(std::string(kTrackerScope), TrackerGroup(store, feature));
}
Status LeaveTrackers(Client& client, const std::string& store, const std::string& feature) {
  if (Status s = CheckFeature(store, feature); !s.ok()) return s;
  return client.Leave(std::string(kTrackerScope), TrackerGroup(store, feature));
}
Result<std::vector<MemberId>> TrackerMembers(Client& client, const std::string& store,
                                             const std::string& feature) {
  if (Status s = CheckFeature(store, feature); !s.ok()) return s;
  return client.Members(std::string(kTrackerScope), TrackerGroup(store, feature));
}

Status Notify(Client& client, const std::string& store, TrackerKind kind,
              const std::string& feature, std::string_view data) {
  if (Status s = CheckFeature(store, feature); !s.ok()) return s;
  TrackerNotice notice{kind, feature, std::string(data)};
  return client.Broadcast(std::string(kTrackerScope), TrackerGroup(store, feature),
                          EncodeTrackerNotice(notice));
}

Result<TrackerDelivery> AsTrackerDelivery(const Message& message) {
  TrackerDelivery d;
  std::string feature;
  if (message.kind != MessageKind::kBroadcast || message.scope != kTrackerScope ||
      !SplitGroup(message.group, &d.store, &feature)) {
    return Status::NotFound("not a tracker notice");
  }
  if (!ValidateStoreId(d.store).ok() || !ValidateFeature(feature).ok()) {
    return Status::BadMessage("tracker group '" + message.group + "' is not <store>:<feature>");
  }
  Result<TrackerNotice> n = DecodeTrackerNotice(message.payload);
  if (!n.ok()) return n.status();
  if (n->feature != feature) {
    return Status::BadMessage("a tracker notice for '" + n->feature + "' in group " +
                              message.group);
  }
  d.notice = std::move(*n);
  return d;
}

}  // namespace meshbus::eventstore
