// The event store's emitter and tracker groups (DESIGN.md §6, issue #5), on
// a Client: functions, not a second session, so a process mixes them with
// the rest of the API on one Client. Each function is as thread-safe as the
// Client it is given (one thread at a time per Client).
//
// Emitter groups: the emitters of a (store, subscription) are the members of
// a process group (an Emitter, sdk/emitter.h, is one). BroadcastEvent hands
// an event to one emitter chosen uniformly at random in the whole mesh (a
// local one without a network hop), which publishes it on the
// subscription's topic "<store>:<subscription>", where subscribers get it,
// and then answers. So an emitter that dies holding the event is seen
// (kUnavailable) and the writer can send it again (DeliverEvent does); with
// no emitters the answer is kNoEmitters. The writer chooses the
// subscriptions an event goes to (Selects); an emitter refuses an event its
// subscription does not select.
//
// Tracker groups: the trackers of a (store, feature) are the members of a
// process group; Notify* delivers the kind, the feature and the data to
// every tracker in the mesh, once each.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "sdk/client.h"
#include "topics/eventstore.h"

namespace meshbus::eventstore {

// ---- emitter groups ---------------------------------------------------------------

Status JoinEmitters(Client& client, const std::string& store, const std::string& subscription);
Status LeaveEmitters(Client& client, const std::string& store, const std::string& subscription);
Result<std::vector<MemberId>> EmitterMembers(Client& client, const std::string& store,
                                             const std::string& subscription);

// To one random emitter of the subscription; returns the emitter once it has
// handed the event to its broker for the subscribers. kNoEmitters when the
// group is empty; kInvalidArgument when the event is invalid or the emitter
// refused it (its subscription does not select it); kUnavailable or kTimeout
// when the emitter died or did not answer (it may have published).
Result<MemberId> BroadcastEvent(
    Client& client, const std::string& store, const std::string& subscription, const Event& event,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));

// How an event reached an emitter: from a writer on the same node (no
// network hop), or from another node.
enum class EmitterTag { kForwardToLocal, kBroadcast };
std::string_view EmitterTagName(EmitterTag tag);  // "forward_to_local", "broadcast"

struct EmitterDelivery {
  EmitterTag tag = EmitterTag::kBroadcast;
  std::string store, subscription;
  Event event;
};
// What a Message received by an emitter carries. kNotFound: the message is
// not an event for an emitter group; kBadMessage: it is, but does not decode.
Result<EmitterDelivery> AsEmitterDelivery(const Client& emitter, const Message& message);
// Publishes the delivery's event on its subscription's topic, then answers
// the writer (without waiting for the broker to confirm the answer). The
// emitter's whole job, for one event.
Status ForwardToSubscribers(Client& emitter, const Message& message,
                            const EmitterDelivery& delivery);

// Subscribers: Subscribe(SubscriptionTopic(store, subscription)) on a
// Client, then this on each Message: the event, or kNotFound when the message
// is not exactly that subscription's (a topic prefix matches longer topics).
Result<Event> AsSubscriptionEvent(const Message& message, const std::string& store,
                                  const std::string& subscription);

// Keeps the names of a pool of `pool_size` emitters in the registry's records
// (they outlive every process) and returns them.
Result<std::vector<std::string>> PersistEmitters(Client& client, const std::string& store,
                                                 const std::string& subscription,
                                                 uint32_t pool_size);
// The names kept by PersistEmitters, or nullopt when none were kept.
Result<std::optional<std::vector<std::string>>> RetrieveEmitters(Client& client,
                                                                 const std::string& store,
                                                                 const std::string& subscription);

// BroadcastEvent again until an emitter has published the event or `timeout`
// passes: through no_emitters (a leader starting its pools), and through an
// emitter that died holding it (kUnavailable, kTimeout); not when this
// client's own session is gone, nor after a refusal. At least once: an
// emitter that published and died before it answered publishes it again
// through another, so subscribers that must see each event once drop
// repeats by event id.
Result<MemberId> DeliverEvent(Client& client, const std::string& store,
                              const std::string& subscription, const Event& event,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

// ---- subscriptions ---------------------------------------------------------------
// A store's subscriptions are registry records (SubscriptionKey), so they
// outlive every process and a new store leader finds them. Every change is
// also notified to the store's trackers of "subscriptions", with the encoded
// Subscription as the data: that is how a store leader learns of it.

// kExists: a subscription with this id is there already (nothing changed).
Status CreateSubscription(Client& client, const std::string& store,
                          const Subscription& subscription);
// Replaces it; kNotFound when there is none with this id. (A read, then a
// write: a delete between the two is undone by the update.)
Status UpdateSubscription(Client& client, const std::string& store,
                          const Subscription& subscription);
// kNotFound when there is none.
Status DeleteSubscription(Client& client, const std::string& store,
                          const std::string& subscription_id);
// Sorted by id; consistent: as the registry's leader has them. A record
// under the store's prefix that is not a valid subscription (only a
// hand-written record can be one) is left out, and its key added to
// *bad_keys when given.
Result<std::vector<Subscription>> ListSubscriptions(Client& client, const std::string& store,
                                                    bool consistent = false,
                                                    std::vector<std::string>* bad_keys = nullptr);

// ---- tracker groups ---------------------------------------------------------------

Status JoinTrackers(Client& client, const std::string& store, const std::string& feature);
Status LeaveTrackers(Client& client, const std::string& store, const std::string& feature);
Result<std::vector<MemberId>> TrackerMembers(Client& client, const std::string& store,
                                             const std::string& feature);
// To every tracker of (store, feature) in the mesh, once each.
Status Notify(Client& client, const std::string& store, TrackerKind kind,
              const std::string& feature, std::string_view data);
inline Status NotifyCreated(Client& c, const std::string& store, const std::string& feature,
                            std::string_view data) {
  return Notify(c, store, TrackerKind::kCreated, feature, data);
}
inline Status NotifyDeleted(Client& c, const std::string& store, const std::string& feature,
                            std::string_view data) {
  return Notify(c, store, TrackerKind::kDeleted, feature, data);
}
inline Status NotifyUpdated(Client& c, const std::string& store, const std::string& feature,
                            std::string_view data) {
  return Notify(c, store, TrackerKind::kUpdated, feature, data);
}
// A notice received by a tracker, with its store. kNotFound: the message is
// not a tracker notice; kBadMessage: it is, but does not decode.
struct TrackerDelivery {
  std::string store;
  TrackerNotice notice;
};
Result<TrackerDelivery> AsTrackerDelivery(const Message& message);

}  // namespace meshbus::eventstore
