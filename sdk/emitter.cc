#include "sdk/emitter.h"

namespace meshbus::eventstore {
namespace {

// How long the thread waits for a delivery before it looks at its stop flag.
constexpr std::chrono::milliseconds kPollInterval(50);

}  // namespace

Result<std::unique_ptr<Emitter>> Emitter::Start(const ClientOptions& options,
                                                const std::string& store,
                                                const Subscription& subscription,
                                                const std::string& name) {
  if (Status s = ValidateStoreId(store); !s.ok()) return s;
  if (Status s = ValidateSubscription(subscription); !s.ok()) return s;
  ClientOptions o = options;
  o.name = name;
  Result<Client> c = Client::Connect(o);
  if (!c.ok()) return c.status();
  if (Status s = JoinEmitters(*c, store, subscription.id); !s.ok()) return s;
  return std::unique_ptr<Emitter>(new Emitter(std::move(c.value()), store, subscription));
}

Emitter::Emitter(Client client, std::string store, Subscription subscription)
    : client_(std::move(client)),
      self_(client_.self()),
      store_(std::move(store)),
      subscription_(std::move(subscription)) {
  thread_ = std::thread([this] { Run(); });
}

Emitter::~Emitter() {
  RequestStop();
  Join();
}

void Emitter::RequestStop() {
  stop_ = true;
}

void Emitter::Join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

uint64_t Emitter::forwarded(EmitterTag tag) const {
  return tag == EmitterTag::kForwardToLocal ? local_.load() : remote_.load();
}

void Emitter::Handle(const Delivery& d) {
  if (const Outcome* o = std::get_if<Outcome>(&d); o != nullptr && !o->status.ok()) {
    ++late_answers_;  // an answer the writer no longer waited for
    return;
  }
  const Message* m = std::get_if<Message>(&d);
  if (m == nullptr || m->kind != MessageKind::kRequest) return;
  Result<EmitterDelivery> e = AsEmitterDelivery(client_, *m);
  Status refusal;
  if (!e.ok()) {
    refusal = e.status();
  } else if (e->store != store_ || e->subscription != subscription_.id) {
    refusal =
        Status::BadMessage("an event for " + SubscriptionTopic(e->store, e->subscription) +
                           " at an emitter of " + SubscriptionTopic(store_, subscription_.id));
  } else if (!Selects(subscription_, e->event)) {
    refusal = Status::InvalidArgument("subscription " + subscription_.id +
                                      " does not select event " + e->event.event_id);
  }
  if (!refusal.ok()) {
    ++refused_;
    client_.ReplyAsync(*m, refusal.ToString());
    return;
  }
  if (ForwardToSubscribers(client_, *m, *e).ok()) {
    ++(e->tag == EmitterTag::kForwardToLocal ? local_ : remote_);
  }
}

void Emitter::Run() {
  while (!stop_) {
    Result<Delivery> d = client_.Receive(kPollInterval);
    if (d.ok()) {
      Handle(*d);
    } else if (client_.session_lost()) {
      failed_ = true;
      return;  // nothing more can come; the owner replaces this emitter
    }
  }
  // Leave first, so no new event is sent here, then forward what came
  // before the leave. Whatever the broker still routes here after that is
  // answered kUnavailable when the session closes.
  LeaveEmitters(client_, store_, subscription_.id);
  for (;;) {
    Result<Delivery> d = client_.Receive(std::chrono::milliseconds(0));
    if (!d.ok()) break;
    Handle(*d);
  }
  client_.Close();
}

}  // namespace meshbus::eventstore
