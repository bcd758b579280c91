// Bad input on every endpoint of a real broker: garbage from raw ZeroMQ
// sockets (as a client, as a peer's request, as a peer's publisher) and raw
// TCP bytes. The broker must answer clients with errors, count and drop what
// peers send, and keep serving.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <msgpack.hpp>
#include <mutex>
#include <random>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "broker/registry.h"
#include "test/test_mesh.h"
#include "topics/wire.h"

namespace meshbus::testing {
namespace {

using std::chrono::milliseconds;

std::string Packed(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& fill) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  fill(pk);
  return std::string(buf.data(), buf.size());
}

// Frames that are wrong in every way we can think of.
std::vector<std::string> GarbageFrames() {
  std::mt19937 rng(7);
  std::vector<std::string> out = {
      "",                                            // empty
      "\xc1",                                        // a byte msgpack never uses
      "hello, broker",                               // text
      Packed([](auto& pk) { pk.pack_uint32(10); }),  // not an array
      Packed([](auto& pk) { pk.pack_array(0); }),    // no type
      Packed([](auto& pk) {
        pk.pack_array(2);
        pk.pack_uint32(9999);
        pk.pack_uint32(1);
      }),  // unknown type
      Packed([](auto& pk) {
        pk.pack_array(2);
        pk.pack_str(1);
        pk.pack_str_body("x", 1);
        pk.pack_uint32(1);
      }),
      Packed([](auto& pk) {
        pk.pack_array(4);
        pk.pack_uint32(10);
        pk.pack_uint32(1);
        pk.pack_uint32(5);
        pk.pack_uint32(5);
      }),
      Packed([](auto& pk) {  // join with an over-long group name
        std::string big(5000, 'g');
        pk.pack_array(4);
        pk.pack_uint32(10);
        pk.pack_uint32(1);
        pk.pack_str(1);
        pk.pack_str_body("s", 1);
        pk.pack_str(big.size());
        pk.pack_str_body(big.data(), big.size());
      }),
      Packed([](auto& pk) {  // join with an empty scope
        pk.pack_array(4);
        pk.pack_uint32(10);
        pk.pack_uint32(1);
        pk.pack_str(0);
        pk.pack_str(1);
        pk.pack_str_body("g", 1);
      }),
      Packed([](auto& pk) {  // a delta claiming 2^31 ops
        pk.pack_array(4);
        pk.pack_uint32(201);
        pk.pack_array(2);
        pk.pack_str(4);
        pk.pack_str_body("evil", 4);
        pk.pack_uint64(1);
        pk.pack_uint64(1);
        pk.pack_array(0x7fffffff);
      }),
      Packed([](auto& pk) {  // nested far too deep
        for (int i = 0; i < 100; ++i) pk.pack_array(1);
        pk.pack_nil();
      }),
  };
  // A valid hello, truncated at every length.
  std::string hello =
      wire::Encode(wire::ClientRequest(wire::Hello{1, wire::kProtocolVersion, "x"}));
  for (size_t n = 1; n < hello.size(); ++n) out.push_back(hello.substr(0, n));
  // Random bytes, and a 2 MiB blob.
  for (int i = 0; i < 20; ++i) {
    std::string s(1 + rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    out.push_back(s);
  }
  out.push_back(std::string(2 << 20, '\x93'));
  return out;
}

void SendRawTcp(const std::string& tcp_endpoint, const std::string& bytes) {
  std::string rest = tcp_endpoint.substr(6);
  size_t colon = rest.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(rest.substr(colon + 1))));
  inet_pton(AF_INET, rest.substr(0, colon).c_str(), &addr.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    (void)!::write(fd, bytes.data(), bytes.size());
  }
  ::close(fd);
}

// A fake peer's calls socket, served by a thread: it answers the broker's
// probes (so that the fake peer stays alive) and hands every other message
// it gets, alone or out of a call batch, to `on_message` (on its thread).
class FakePeerCalls {
 public:
  FakePeerCalls(zmq::context_t& ctx, wire::PeerId me,
                std::function<void(const wire::PeerMessage&)> on_message)
      : me_(std::move(me)), on_message_(std::move(on_message)) {
    zmq::socket_t sock(ctx, zmq::socket_type::router);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::rcvtimeo, 20);
    sock.bind("tcp://127.0.0.1:*");
    endpoint_ = sock.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this, sock = std::move(sock)]() mutable { Serve(sock); });
  }
  ~FakePeerCalls() { Stop(); }
  // Closes the socket: the fake peer falls silent and refuses connections,
  // so the broker declares it dead. While it serves, it answers every probe
  // and stays alive.
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  // The broker answers over its own link to this socket, which queues
  // nothing until it is connected: call once something has come through it.
  bool heard_from_broker() const { return heard_; }

 private:
  void Serve(zmq::socket_t& sock) {
    while (!stop_) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(sock, std::back_inserter(frames)) || frames.size() < 2) continue;
      heard_ = true;
      auto m = wire::DecodePeerMessage(frames[1].to_string_view());
      if (!m.ok()) continue;
      std::vector<wire::PeerMessage> got;
      if (auto* b = std::get_if<wire::PeerCallBatch>(&m.value()); b && frames.size() == 3) {
        std::vector<wire::BatchEntry> entries;
        if (!wire::SplitMessageBatch(frames[2].to_string_view(), b->count, &entries).ok()) continue;
        for (const wire::BatchEntry& e : entries) {
          if (auto c = wire::DecodePeerMessage(e.header); c.ok()) got.push_back(c.value());
        }
      } else {
        got.push_back(m.value());
      }
      std::vector<wire::PeerMessage> calls;  // an ack run as the acks it stands for
      for (wire::PeerMessage& g : got) {
        if (auto* run = std::get_if<wire::PeerAckRun>(&g)) {
          for (uint64_t id : run->ids) calls.push_back(wire::PeerForwardAck{run->from, id, {}});
        } else {
          calls.push_back(std::move(g));
        }
      }
      for (const wire::PeerMessage& g : calls) {
        if (auto* p = std::get_if<wire::PeerProbe>(&g); p && !p->is_reply) {
          sock.send(frames[0], zmq::send_flags::sndmore);
          sock.send(
              zmq::buffer(wire::Encode(wire::PeerMessage(wire::PeerProbe{me_, p->nonce, true}))),
              zmq::send_flags::none);
        } else {
          on_message_(g);
        }
      }
    }
  }

  wire::PeerId me_;
  std::function<void(const wire::PeerMessage&)> on_message_;
  std::string endpoint_;
  std::atomic<bool> stop_{false}, heard_{false};
  std::thread thread_;
};

// The acks of forwards a fake peer got back, by forward id.
class AckLog {
 public:
  void Record(const wire::PeerMessage& m) {
    if (auto* a = std::get_if<wire::PeerForwardAck>(&m)) {
      std::lock_guard<std::mutex> lock(mu_);
      acks_[a->id] = a->status;
    }
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return acks_.size();
  }
  // The ack of forward `id`; kNotFound if none came.
  Status Of(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = acks_.find(id);
    return it == acks_.end() ? Status::NotFound("no ack of " + std::to_string(id)) : it->second;
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, Status> acks_;
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  }

  // The broker still serves: a join on n1 is seen on n2.
  void ExpectStillServing(const std::string& group) {
    Client a = mesh.Connect(0);
    Client b = mesh.Connect(1);
    ASSERT_TRUE(a.Join("alive", group).ok());
    EXPECT_TRUE(WaitFor([&] {
      auto m = b.Members("alive", group);
      return m.ok() && m->size() == 1;
    }));
    // A fake peer a test made is declared dead once it falls silent.
    EXPECT_TRUE(WaitFor([&] { return mesh.AllConverged(); }));
  }

  // The hello of fake peer `me`, reached at `calls` (its other endpoints
  // lead nowhere).
  static wire::PeerHello HelloOf(const wire::PeerId& me, const FakePeerCalls& calls) {
    wire::PeerHello h;
    h.from = me;
    h.endpoints = {calls.endpoint(), "tcp://127.0.0.1:1", "tcp://127.0.0.1:1"};
    return h;
  }
  // Says `hello` on `dealer`; true once the broker welcomed it and has come
  // through on its own link to the fake peer's calls socket.
  static bool Greet(zmq::socket_t& dealer, const wire::PeerHello& hello,
                    const FakePeerCalls& calls) {
    dealer.send(zmq::buffer(wire::Encode(wire::PeerMessage(hello))), zmq::send_flags::none);
    zmq::message_t welcome;
    if (!dealer.recv(welcome)) return false;
    return WaitFor([&] { return calls.heard_from_broker(); });
  }

  // A DEALER to broker i's calls socket, as a peer's link would be.
  zmq::socket_t DialCalls(int i) {
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::rcvtimeo, 2000);
    dealer.connect(mesh.broker(i).calls_endpoint());
    return dealer;
  }

  TestMesh mesh{2};
  zmq::context_t ctx;
};

TEST_F(BadInputTest, ClientGarbageGetsErrorRepliesAndTheBrokerServesOn) {
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.set(zmq::sockopt::rcvtimeo, 2000);
  raw.connect("ipc://" + mesh.client_endpoint(0));
  std::vector<std::string> garbage = GarbageFrames();
  for (const std::string& frame : garbage) {
    raw.send(zmq::buffer(frame), zmq::send_flags::none);
    zmq::message_t reply;
    ASSERT_TRUE(raw.recv(reply)) << "no reply to a bad request of " << frame.size() << " bytes";
    auto in = wire::DecodeClientInbound(reply.to_string_view());
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    const auto& r = std::get<wire::Reply>(in.value());
    EXPECT_FALSE(r.status.ok());
    EXPECT_FALSE(r.status.message().empty()) << "an error must say what was wrong";
  }
  // Two frames in one request: an error too.
  raw.send(zmq::buffer(std::string("a")), zmq::send_flags::sndmore);
  raw.send(zmq::buffer(std::string("b")), zmq::send_flags::none);
  zmq::message_t reply;
  ASSERT_TRUE(raw.recv(reply));
  EXPECT_FALSE(
      std::get<wire::Reply>(wire::DecodeClientInbound(reply.to_string_view()).value()).status.ok());
  // A valid request with no session: told to say hello first.
  raw.send(zmq::buffer(wire::Encode(wire::ClientRequest(wire::Join{5, "s", "g"}))),
           zmq::send_flags::none);
  ASSERT_TRUE(raw.recv(reply));
  auto no_session =
      std::get<wire::Reply>(wire::DecodeClientInbound(reply.to_string_view()).value());
  EXPECT_EQ(no_session.req, 5u);
  EXPECT_EQ(no_session.status.code(), Code::kUnavailable);
  // A join with an empty scope names the field, with the request's id.
  std::string bad_join = GarbageFrames()[9];
  raw.send(zmq::buffer(bad_join), zmq::send_flags::none);
  ASSERT_TRUE(raw.recv(reply));
  auto named = std::get<wire::Reply>(wire::DecodeClientInbound(reply.to_string_view()).value());
  EXPECT_EQ(named.req, 1u);
  EXPECT_NE(named.status.message().find("scope"), std::string::npos) << named.status.message();
  // A forged heartbeat is counted, not trusted.
  raw.send(zmq::buffer(wire::Encode(wire::ClientRequest(wire::SessionHeartbeat{1, 12345}))),
           zmq::send_flags::none);

  EXPECT_GE(mesh.broker(0).Stats()["client_bad_messages"], garbage.size() + 1);
  ExpectStillServing("after-client-garbage");
}

TEST_F(BadInputTest, PeerRequestGarbageIsCountedAndDropped) {
  uint64_t before = mesh.broker(0).Stats()["peer_bad_messages"];
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(mesh.broker(0).calls_endpoint());
  std::vector<std::string> garbage = GarbageFrames();
  for (const std::string& frame : garbage) raw.send(zmq::buffer(frame), zmq::send_flags::none);
  raw.send(zmq::buffer(std::string("a")), zmq::send_flags::sndmore);
  raw.send(zmq::buffer(std::string("b")), zmq::send_flags::none);
  EXPECT_TRUE(WaitFor([&] {
    return mesh.broker(0).Stats()["peer_bad_messages"] >= before + garbage.size() + 1;
  })) << mesh.broker(0).Stats()["peer_bad_messages"] - before
      << " of " << garbage.size() + 1 << " counted";
  // Nothing is answered to garbage.
  zmq::message_t reply;
  EXPECT_FALSE(raw.recv(reply, zmq::recv_flags::dontwait));
  ExpectStillServing("after-peer-garbage");
}

// Well-formed messaging calls from a node this broker never met (a forged
// peer): counted and dropped, never delivered to a member.
TEST_F(BadInputTest, ForgedMessagingFromAStrangerIsDropped) {
  Client member = mesh.Connect(0);
  ASSERT_TRUE(member.Join("app", "workers").ok());
  MemberId target = member.self();
  uint64_t unknown = mesh.broker(0).Stats()["peer_unknown_messages"];
  zmq::socket_t raw = DialCalls(0);
  const wire::PeerId stranger{"stranger", 1};
  auto send = [&](const wire::PeerMessage& m, bool payload) {
    raw.send(zmq::buffer(wire::Encode(m)),
             payload ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (payload) raw.send(zmq::buffer(std::string("forged")), zmq::send_flags::none);
  };
  send(wire::PeerForward{stranger, 1, wire::MessageKind::kDispatch, target.session, "app",
                         "workers", MemberId{"stranger", 1, 1}, 0},
       true);
  send(wire::PeerForward{stranger, 2, wire::MessageKind::kDirect, target.session, "", "",
                         MemberId{"stranger", 1, 1}, 0},
       true);
  send(wire::PeerResponse{stranger, 3, Status::Ok(), MemberId{"stranger", 1, 1}}, true);
  send(wire::PeerForwardAck{stranger, 4, Status::Ok()}, false);
  send(wire::PeerSubscriptionCheck{stranger, "Zstranger.1", false}, false);
  // A payload where none belongs, and none where one does.
  send(wire::PeerForwardAck{stranger, 5, Status::Ok()}, true);
  raw.send(zmq::buffer(wire::Encode(wire::PeerMessage(
               wire::PeerResponse{stranger, 6, Status::Ok(), MemberId{"stranger", 1, 1}}))),
           zmq::send_flags::none);
  EXPECT_TRUE(WaitFor([&] {
    auto stats = mesh.broker(0).Stats();
    return stats["peer_unknown_messages"] >= unknown + 5 && stats["peer_bad_messages"] >= 2;
  }));
  Result<Delivery> d = member.Receive(milliseconds(200));
  EXPECT_FALSE(d.ok() && std::holds_alternative<Message>(*d)) << "a forged message was delivered";
  EXPECT_EQ(mesh.broker(0).Stats()["forwards_received"], 0u);
  ExpectStillServing("after-forged-messaging");
}

TEST_F(BadInputTest, GarbageFromAPeersPublisherIsCountedAndDropped) {
  // Pose as a peer: say hello with a control endpoint we publish on, so the
  // broker subscribes to us; then publish garbage there.
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  pub.set(zmq::sockopt::linger, 0);
  pub.bind("tcp://127.0.0.1:*");
  std::string pub_ep = pub.get(zmq::sockopt::last_endpoint);
  zmq::socket_t calls(ctx,
                      zmq::socket_type::router);  // our own calls socket, for the broker's link
  calls.set(zmq::sockopt::linger, 0);
  calls.bind("tcp://127.0.0.1:*");
  zmq::socket_t dealer = DialCalls(0);
  wire::PeerHello hello;
  hello.from = {"impostor", 1};
  hello.endpoints = {calls.get(zmq::sockopt::last_endpoint), pub_ep, pub_ep};
  dealer.send(zmq::buffer(wire::Encode(wire::PeerMessage(hello))), zmq::send_flags::none);
  zmq::message_t welcome;
  ASSERT_TRUE(dealer.recv(welcome));
  auto w = wire::DecodePeerMessage(welcome.to_string_view());
  ASSERT_TRUE(w.ok());
  const auto& broker_eps = std::get<wire::PeerHello>(w.value()).endpoints;

  uint64_t before = mesh.broker(0).Stats()["peer_bad_messages"];
  std::vector<std::string> garbage = GarbageFrames();
  // The subscription takes a moment to arrive (slow joiner): publish until
  // the broker counts something, then the whole set.
  ASSERT_TRUE(WaitFor([&] {
    pub.send(zmq::buffer(std::string("\xc1")), zmq::send_flags::none);
    return mesh.broker(0).Stats()["peer_bad_messages"] > before;
  }));
  before = mesh.broker(0).Stats()["peer_bad_messages"];
  for (const std::string& frame : garbage) pub.send(zmq::buffer(frame), zmq::send_flags::none);
  pub.send(zmq::buffer(std::string("a")), zmq::send_flags::sndmore);
  pub.send(zmq::buffer(std::string("b")), zmq::send_flags::none);
  // A delta for a session that never joined: a leave we cannot apply.
  wire::PeerDelta bogus{{"impostor", 1}, 1, {{wire::DeltaOpKind::kLeave, "s", "g", 42}}};
  pub.send(zmq::buffer(wire::Encode(wire::PeerMessage(bogus))), zmq::send_flags::none);
  EXPECT_TRUE(WaitFor(
      [&] { return mesh.broker(0).Stats()["peer_bad_messages"] >= before + garbage.size() + 1; }));
  EXPECT_TRUE(WaitFor([&] { return mesh.broker(0).Stats()["delta_inconsistencies"] == 1; }));

  // Raw TCP bytes at every TCP port the broker listens on.
  for (const std::string& ep : {broker_eps.calls, broker_eps.control, broker_eps.data}) {
    SendRawTcp(ep, "GET / HTTP/1.0\r\n\r\n");
    SendRawTcp(ep, std::string(100000, '\xff'));
  }
  ExpectStillServing("after-publisher-garbage");
}

// Data batches from a peer: one whose payload frames do not match its
// sessions is counted and dropped; a good one is delivered message by
// message, each from its own session, and what a later batch repeats is
// delivered once.
TEST_F(BadInputTest, DataBatchesFromAPeerAreCheckedAndDeliveredOnce) {
  Client sub = mesh.Connect(0);
  ASSERT_TRUE(sub.Subscribe("forged").ok());
  zmq::socket_t control(ctx, zmq::socket_type::pub), data(ctx, zmq::socket_type::pub);
  zmq::socket_t calls(ctx, zmq::socket_type::router);
  for (zmq::socket_t* s : {&control, &data, &calls}) {
    s->set(zmq::sockopt::linger, 0);
    s->bind("tcp://127.0.0.1:*");
  }
  zmq::socket_t dealer = DialCalls(0);
  wire::PeerHello hello;
  hello.from = {"impostor", 1};
  hello.endpoints = {calls.get(zmq::sockopt::last_endpoint),
                     control.get(zmq::sockopt::last_endpoint),
                     data.get(zmq::sockopt::last_endpoint)};
  dealer.send(zmq::buffer(wire::Encode(wire::PeerMessage(hello))), zmq::send_flags::none);
  zmq::message_t welcome;
  ASSERT_TRUE(dealer.recv(welcome));

  // The payloads go packed in one frame (none when there are none), or
  // `unpacked`, a frame each.
  auto send_on = [&](const std::string& topic, uint64_t first, std::vector<uint64_t> sessions,
                     std::vector<std::string> payloads, bool unpacked = false) {
    wire::PeerData d{hello.from, 1, {{"", first}}, std::move(sessions), false};
    std::vector<std::string> frames = {PublishDataTopic(topic), wire::Encode(wire::PeerMessage(d))};
    if (unpacked) {
      frames.insert(frames.end(), payloads.begin(), payloads.end());
    } else if (!payloads.empty()) {
      frames.emplace_back();
      for (const std::string& p : payloads) wire::AppendSized(&frames.back(), p);
    }
    for (size_t i = 0; i < frames.size(); ++i) {
      data.send(zmq::buffer(frames[i]),
                i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  };
  auto send = [&](uint64_t first, std::vector<uint64_t> sessions, std::vector<std::string> payloads,
                  bool unpacked = false) {
    send_on("forged", first, std::move(sessions), std::move(payloads), unpacked);
  };
  // The broker's subscription to us takes a moment (slow joiner): probes on
  // a topic of their own until one arrives; what follows is not dropped.
  uint64_t probe = 0;
  ASSERT_TRUE(WaitFor([&] {
    send_on("forged.probe", ++probe, {1}, {"probe"});
    Result<Delivery> d = sub.Receive(std::chrono::milliseconds(10));
    return d.ok() && std::holds_alternative<Message>(*d);
  }));
  auto bad = [&] { return mesh.broker(0).Stats()["peer_bad_messages"]; };
  uint64_t before = bad();
  send(1, {7, 8}, {"one payload for two sessions"});
  send(1, {7}, {"two payloads", "for one session"});
  send(1, {7, 8}, {});
  send(1, {7, 8}, {"a frame", "each"}, /*unpacked=*/true);
  send(1, {7}, {"a frame of one"}, /*unpacked=*/true);  // not packed: a length is missing
  EXPECT_TRUE(WaitFor([&] { return bad() >= before + 5; }));
  EXPECT_EQ(bad(), before + 5);

  send(1, {7, 8, 7}, {"m1", "m2", "m3"});
  send(2, {8, 7, 9, 9}, {"m2", "m3", "m4", "m5"});  // repeats m2 and m3
  std::vector<Message> got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (got.size() < 6 && std::chrono::steady_clock::now() < deadline) {
    // Past the fifth, a bounded wait for a repeat that must not come.
    auto wait = std::chrono::milliseconds(got.size() < 5 ? 100 : 300);
    Result<Delivery> d = sub.Receive(wait);
    if (d.ok()) {
      auto* m = std::get_if<Message>(&*d);
      if (m != nullptr && m->topic == "forged") got.push_back(std::move(*m));  // not a probe
    } else if (got.size() >= 5) {
      break;
    }
  }
  ASSERT_EQ(got.size(), 5u) << "each message once";
  const uint64_t senders[] = {7, 8, 7, 9, 9};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].payload, "m" + std::to_string(i + 1));
    EXPECT_EQ(got[i].from, (MemberId{"impostor", 1, senders[i]}));
  }
  EXPECT_EQ(mesh.broker(0).Stats()["data_duplicates"], 2u);
  ExpectStillServing("after-forged-batches");
}

// Call batches from a peer: each entry is checked before any is acted on,
// so a batch with one bad entry is counted and dropped whole; a good one
// delivers its forwards in order and is answered with an ack for each.
TEST_F(BadInputTest, CallBatchesFromAPeerAreCheckedWhole) {
  Client member = mesh.Connect(0);
  ASSERT_TRUE(member.Join("jobs", "w").ok());
  const wire::PeerId me{"impostor", 7};
  AckLog acks;
  FakePeerCalls calls(ctx, me, [&](const wire::PeerMessage& m) { acks.Record(m); });
  zmq::socket_t dealer = DialCalls(0);
  const wire::PeerHello h = HelloOf(me, calls);
  ASSERT_TRUE(Greet(dealer, h, calls));

  auto forward = [&](uint64_t id, wire::PeerId from = {}) {
    return wire::PeerMessage(wire::PeerForward{from.node.empty() ? me : from, id,
                                               wire::MessageKind::kDispatch, member.self().session,
                                               "jobs", "w", MemberId{"impostor", 7, 1}, 0});
  };
  // (header, payload) entries; a header given as a message is encoded.
  using Entry = std::pair<std::string, std::string>;
  auto batch = [&](uint32_t count, const std::vector<Entry>& entries, bool with_frame = true) {
    std::string frame;
    for (const auto& [header, payload] : entries) {
      wire::AppendBatchEntry(&frame, header, false, payload);
    }
    std::string head = wire::Encode(wire::PeerMessage(wire::PeerCallBatch{me, count}));
    dealer.send(zmq::buffer(head), with_frame ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (with_frame) dealer.send(zmq::buffer(frame), zmq::send_flags::none);
  };
  auto enc = [](const wire::PeerMessage& m) { return wire::Encode(m); };
  auto bad = [&] { return mesh.broker(0).Stats()["peer_bad_messages"]; };
  const uint64_t before = bad();
  batch(3, {{enc(forward(10)), "bad"}, {enc(forward(11)), "bad"}});        // fewer than it says
  batch(2, {{enc(forward(12)), "bad"}, {enc(wire::PeerMessage(h)), ""}});  // not a call
  batch(2, {{enc(forward(13)), "bad"}, {enc(forward(14, {"other", 1})), "bad"}});  // not ours
  batch(2, {{enc(forward(15)), "bad"},
            {enc(wire::PeerMessage(wire::PeerForwardAck{me, 99, Status::Ok()})), "x"}});
  batch(2, {{enc(forward(16)), "bad"}, {"\xc1", "bad"}});  // garbage
  batch(2, {}, /*with_frame=*/false);                      // no entries frame
  // Forward runs: (ids, payloads packed as a run carries them).
  auto run = [&](std::vector<uint64_t> ids, const std::vector<std::string>& payloads) {
    wire::PeerForwardRun r{
        me, wire::MessageKind::kDispatch, "jobs", "w", MemberId{"impostor", 7, 1}, 0, {}};
    for (uint64_t id : ids) r.calls.push_back({id, member.self().session});
    std::string packed;
    for (const std::string& p : payloads) wire::AppendSized(&packed, p);
    return Entry{enc(wire::PeerMessage(r)), packed};
  };
  batch(2, {{enc(forward(17)), "bad"}, run({18, 19}, {"bad"})});     // a payload short
  batch(2, {{enc(forward(20)), "bad"}, run({21}, {"bad", "bad"})});  // one too many
  {
    Entry alone = run({22, 23}, {"bad"});  // not in a batch, a payload short
    dealer.send(zmq::buffer(alone.first), zmq::send_flags::sndmore);
    dealer.send(zmq::buffer(alone.second), zmq::send_flags::none);
  }
  EXPECT_TRUE(WaitFor([&] { return bad() >= before + 9; }));
  EXPECT_EQ(bad(), before + 9);

  batch(3, {{enc(forward(1)), "f1"}, {enc(forward(2)), "f2"}, {enc(forward(3)), "f3"}});
  batch(2, {{enc(forward(4)), "f4"}, run({5, 6}, {"f5", "f6"})});
  {
    Entry alone = run({7, 8}, {"f7", "f8"});
    dealer.send(zmq::buffer(alone.first), zmq::send_flags::sndmore);
    dealer.send(zmq::buffer(alone.second), zmq::send_flags::none);
  }
  const std::vector<std::string> want = {"f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"};
  std::vector<std::string> box;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (box.size() < want.size() && std::chrono::steady_clock::now() < deadline) {
    Result<Delivery> d = member.Receive(std::chrono::milliseconds(100));
    if (auto* m = d.ok() ? std::get_if<Message>(&*d) : nullptr) box.push_back(m->payload);
  }
  EXPECT_EQ(box, want) << "no bad batch may deliver anything";
  EXPECT_TRUE(WaitFor([&] { return acks.size() >= want.size(); }));
  EXPECT_EQ(acks.size(), want.size()) << "acks only for the good batches' forwards";
  for (uint64_t id = 1; id <= want.size(); ++id) {
    EXPECT_TRUE(acks.Of(id).ok()) << id << ": " << acks.Of(id).ToString();
  }
}

// The forwards of one run share their header and their group, and the
// broker works those out once per run; each forward is still answered for
// its own target: a member in the group has it, a session that is not in
// the group or does not exist refuses it, however the targets repeat.
TEST_F(BadInputTest, EachForwardOfARunIsAnsweredForItsOwnTarget) {
  Client member = mesh.Connect(0), outsider = mesh.Connect(0);
  ASSERT_TRUE(member.Join("jobs", "w").ok());
  ASSERT_TRUE(outsider.Join("jobs", "other").ok());
  const wire::PeerId me{"impostor", 7};
  AckLog acks;
  FakePeerCalls calls(ctx, me, [&](const wire::PeerMessage& m) { acks.Record(m); });
  zmq::socket_t dealer = DialCalls(0);
  const wire::PeerHello h = HelloOf(me, calls);
  ASSERT_TRUE(Greet(dealer, h, calls));

  const MemberId sender{"impostor", 7, 1};
  const uint64_t in = member.self().session, out = outsider.self().session, gone = 999999;
  const struct {
    uint64_t id, session;
    Code want;
  } forwards[] = {
      {1, in, Code::kOk},         {2, out, Code::kNotJoined}, {3, in, Code::kOk},
      {4, out, Code::kNotJoined}, {5, gone, Code::kNotFound}, {6, gone, Code::kNotFound},
      {7, in, Code::kOk},
  };
  wire::PeerForwardRun run{me, wire::MessageKind::kDispatch, "jobs", "w", sender, 0, {}};
  std::string packed;
  for (const auto& f : forwards) {
    run.calls.push_back({f.id, f.session});
    wire::AppendSized(&packed, "p" + std::to_string(f.id));
  }
  // Alone, as a run that is a peer's only call of its turn goes.
  dealer.send(zmq::buffer(wire::Encode(wire::PeerMessage(run))), zmq::send_flags::sndmore);
  dealer.send(zmq::buffer(packed), zmq::send_flags::none);

  std::vector<std::string> got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (got.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    Result<Delivery> d = member.Receive(std::chrono::milliseconds(100));
    if (auto* m = d.ok() ? std::get_if<Message>(&*d) : nullptr) {
      EXPECT_EQ(m->kind, MessageKind::kDispatch);
      EXPECT_EQ(m->from, sender);
      EXPECT_EQ(m->scope, "jobs");
      EXPECT_EQ(m->group, "w");
      got.push_back(m->payload);
    }
  }
  EXPECT_EQ(got, (std::vector<std::string>{"p1", "p3", "p7"}));
  ASSERT_TRUE(WaitFor([&] { return acks.size() >= std::size(forwards); }));
  for (const auto& f : forwards) {
    EXPECT_EQ(acks.Of(f.id).code(), f.want) << f.id << ": " << acks.Of(f.id).ToString();
  }
  Result<Delivery> extra = outsider.Receive(std::chrono::milliseconds(200));
  EXPECT_FALSE(extra.ok() && std::holds_alternative<Message>(*extra))
      << "a session outside the group got a forward";
}

// A forward that the member's broker never confirms fails after the
// sender's bound on confirmations, as outcome unknown: the member may or
// may not have it.
TEST_F(BadInputTest, AForwardThatIsNeverConfirmedTimesOutAsUnknown) {
  const wire::PeerId me{"mute", 7};
  std::atomic<int> forwards{0};
  FakePeerCalls calls(ctx, me, [&](const wire::PeerMessage& m) {
    if (std::holds_alternative<wire::PeerForward>(m)) ++forwards;
  });
  zmq::socket_t dealer = DialCalls(0);
  wire::PeerHello h = HelloOf(me, calls);
  h.snapshot = wire::Snapshot{1, {{"jobs", "mute", 1, 1}}};  // its member mute.7.1
  ASSERT_TRUE(Greet(dealer, h, calls));
  Client sender = mesh.Connect(0);
  ASSERT_TRUE(WaitFor([&] {
    auto m = sender.Members("jobs", "mute");
    return m.ok() && m->size() == 1;
  }));
  const uint64_t failures = mesh.broker(0).Stats()["dispatch_failures"];
  Result<MemberId> r = sender.Dispatch("jobs", "mute", "x");
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().ToString();
  EXPECT_NE(r.status().message().find("no confirmation from mute"), std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(forwards.load(), 1);
  EXPECT_EQ(mesh.broker(0).Stats()["dispatch_failures"], failures + 1);
  calls.Stop();
  ExpectStillServing("after-a-mute-peer");
}

// A peer may write names only for its own members, and only well-formed
// commands; registry messages from a broker with another voter set are
// ignored. n1 (no seeds) is a one-node registry and its leader.
TEST_F(BadInputTest, RegistryCallsFromAPeerAreChecked) {
  Client local = mesh.Connect(0);
  ASSERT_TRUE(WaitFor([&] {
    auto l = local.Leader();
    return l.ok() && l->leader == "n1";
  }));
  const wire::PeerId me{"impostor", 7};
  std::mutex mu;
  std::map<uint64_t, Status> answers;
  FakePeerCalls calls(ctx, me, [&](const wire::PeerMessage& m) {
    if (auto* a = std::get_if<wire::PeerNameAnswer>(&m)) {
      std::lock_guard<std::mutex> lock(mu);
      answers[a->id] = a->status;
    }
  });
  zmq::socket_t dealer = DialCalls(0);
  auto hello = [&](std::vector<std::string> voters) {
    wire::PeerHello h = HelloOf(me, calls);
    h.voters = std::move(voters);
    return Greet(dealer, h, calls);
  };
  ASSERT_TRUE(hello({"n1"}));
  // Sends a name call and waits for the broker's answer.
  auto call = [&](uint64_t id, wire::NameCallOp op, const std::string& data) -> Status {
    dealer.send(zmq::buffer(wire::Encode(wire::PeerMessage(wire::PeerNameCall{me, id, op, data}))),
                zmq::send_flags::none);
    Status got = Status::Timeout("no answer");
    WaitFor([&] {
      std::lock_guard<std::mutex> lock(mu);
      auto it = answers.find(id);
      if (it == answers.end()) return false;
      got = it->second;
      return true;
    });
    return got;
  };
  const MemberId mine{"impostor", 7, 1}, theirs = local.self();
  uint64_t bad_before = mesh.broker(0).Stats()["name_bad_calls"];
  const struct {
    const char* label;
    wire::NameCallOp op;
    std::string data;
    Code want;
  } kCases[] = {
      {"not a command", wire::NameCallOp::kWrite, "\xc1garbage", Code::kBadMessage},
      {"register for another node's member", wire::NameCallOp::kWrite,
       registry::EncodeCommand(registry::Register{"x", theirs, ""}), Code::kInvalidArgument},
      {"register for an older incarnation of itself", wire::NameCallOp::kWrite,
       registry::EncodeCommand(registry::Register{"x", MemberId{"impostor", 6, 1}, ""}),
       Code::kInvalidArgument},
      {"unregister another's name", wire::NameCallOp::kWrite,
       registry::EncodeCommand(registry::Unregister{"x", theirs}), Code::kInvalidArgument},
      {"release another node's member", wire::NameCallOp::kWrite,
       registry::EncodeCommand(registry::ReleaseMember{theirs}), Code::kInvalidArgument},
      {"release a whole node", wire::NameCallOp::kWrite,
       registry::EncodeCommand(registry::ReleaseNode{"n2", UINT64_MAX}), Code::kInvalidArgument},
      {"readmit a node", wire::NameCallOp::kWrite,
       registry::EncodeCommand(registry::ReadmitNode{"impostor", 7}), Code::kInvalidArgument},
      {"its own member", wire::NameCallOp::kWrite,
       registry::EncodeCommand(registry::Register{"mine", mine, "m"}), Code::kOk},
      {"taken", wire::NameCallOp::kWrite,
       registry::EncodeCommand(registry::Register{"mine", MemberId{"impostor", 7, 2}, ""}),
       Code::kTaken},
      {"a consistent read", wire::NameCallOp::kConsistentRead, "mine", Code::kOk},
  };
  uint64_t id = 1;
  for (const auto& c : kCases) EXPECT_EQ(call(id++, c.op, c.data).code(), c.want) << c.label;
  EXPECT_EQ(mesh.broker(0).Stats()["name_bad_calls"], bad_before + 7);
  Result<NameInfo> held = local.Whereis("mine");
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ(held->holder, mine);
  EXPECT_EQ(local.Whereis("x").status().code(), Code::kNotRegistered);

  // A raft message not addressed to n1: counted, and the leader stays.
  raft::Message stray{raft::MessageType::kVote, "impostor", "n9", 99};
  uint64_t raft_bad = mesh.broker(0).Stats()["raft_bad_messages"];
  dealer.send(zmq::buffer(wire::Encode(wire::PeerMessage(wire::PeerRaft{me, stray}))),
              zmq::send_flags::none);
  EXPECT_TRUE(WaitFor([&] { return mesh.broker(0).Stats()["raft_bad_messages"] > raft_bad; }));

  // Another voter set: said in leader(), and its raft messages are ignored.
  ASSERT_TRUE(hello({"impostor", "n1"}));
  EXPECT_TRUE(WaitFor([&] {
    auto l = local.Leader();
    return l.ok() && l->problem.find("impostor") != std::string::npos;
  }));
  uint64_t foreign = mesh.broker(0).Stats()["raft_foreign_messages"];
  raft::Message vote{raft::MessageType::kVote, "impostor", "n1", 99};
  dealer.send(zmq::buffer(wire::Encode(wire::PeerMessage(wire::PeerRaft{me, vote}))),
              zmq::send_flags::none);
  EXPECT_TRUE(WaitFor([&] { return mesh.broker(0).Stats()["raft_foreign_messages"] > foreign; }));
  Result<LeaderInfo> l = local.Leader();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->leader, "n1");
  EXPECT_EQ(l->term, mesh.broker(0).Stats()["raft_term"]);
  calls.Stop();
  ExpectStillServing("after-registry-calls");
}

TEST_F(BadInputTest, AHelloListingThousandsOfPeersCannotExhaustTheBroker) {
  // A peer claims 4,000 known peers at addresses where nothing listens. The
  // broker dials a few per hello, at most kMaxLinks in all, and keeps
  // meeting real peers and serving.
  zmq::socket_t dealer = DialCalls(0);
  wire::PeerHello hello;
  hello.from = {"flooder", 1};
  hello.endpoints = {"tcp://127.0.0.1:9", "tcp://127.0.0.1:9", "tcp://127.0.0.1:9"};
  for (int i = 0; i < 4000; ++i) {
    hello.known_peers.push_back("tcp://127.0.0.1:" + std::to_string(20000 + i));
  }
  for (int round = 0; round < 20; ++round) {
    dealer.send(zmq::buffer(wire::Encode(wire::PeerMessage(hello))), zmq::send_flags::none);
    zmq::message_t welcome;
    ASSERT_TRUE(dealer.recv(welcome));
  }
  auto stats = mesh.broker(0).Stats();
  EXPECT_LE(stats["links"], 200u);
  EXPECT_GT(stats["links_refused"], 0u);
  ExpectStillServing("after-a-flood-of-peers");
}

// What a broker sends is checked by the SDK too: a batch that does not hold
// what it says is a clear error, and the client goes on reading after it.
TEST(ClientBadInputTest, MalformedBatchesFromTheBrokerAreErrors) {
  zmq::context_t ctx(1);
  zmq::socket_t broker(ctx, zmq::socket_type::router);
  broker.set(zmq::sockopt::linger, 0);
  broker.set(zmq::sockopt::rcvtimeo, 5000);
  broker.bind("tcp://127.0.0.1:*");
  ClientOptions options;
  options.endpoint = broker.get(zmq::sockopt::last_endpoint);
  options.call_timeout = std::chrono::milliseconds(200);  // its Close is never answered
  std::string client_route;
  // The fake broker's side of the handshake; the heartbeat socket's
  // messages are read and left unanswered.
  std::thread welcome([&] {
    while (client_route.empty()) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(broker, std::back_inserter(frames))) return;
      if (frames.size() != 2) continue;
      auto request = wire::DecodeClientRequest(frames[1].to_string_view());
      if (!request.ok() || !std::holds_alternative<wire::Hello>(*request)) continue;
      wire::WelcomeBody body{"fake", 1, 1, 1, 60000, 60000, 1 << 20, 1 << 20};
      std::string reply = wire::Encode(
          wire::ClientInbound(wire::Reply{wire::RequestIdOf(*request), Status::Ok(), body}));
      client_route = frames[0].to_string();
      broker.send(zmq::buffer(client_route), zmq::send_flags::sndmore);
      broker.send(zmq::buffer(reply), zmq::send_flags::none);
    }
  });
  Result<Client> client = Client::Connect(options);
  welcome.join();
  ASSERT_TRUE(client.ok()) << client.status().ToString();

  auto message = [](const std::string& topic) {
    wire::Message m;
    m.kind = wire::MessageKind::kPublish;
    m.from = MemberId{"fake", 1, 9};
    m.topic = topic;
    return wire::Encode(wire::ClientInbound(m));
  };
  auto send = [&](std::vector<std::string> frames) {
    broker.send(zmq::buffer(client_route), zmq::send_flags::sndmore);
    for (size_t i = 0; i < frames.size(); ++i) {
      broker.send(zmq::buffer(frames[i]),
                  i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  };
  auto head = [](uint32_t n) { return wire::Encode(wire::ClientInbound(wire::MessageBatch{n})); };
  // A batch's entries: (header, payload) pairs, "" a repeated header.
  auto entries = [](std::vector<std::pair<std::string, std::string>> list) {
    std::string frame;
    for (auto& [header, payload] : list) {
      wire::AppendBatchEntry(&frame, header, header.empty(), payload);
    }
    return frame;
  };
  const std::string gap = wire::Encode(wire::ClientInbound(wire::Gap{1}));
  const std::string good = entries({{message("t"), "p1"}, {"", "p2"}});
  const struct {
    const char* label;
    std::vector<std::string> frames;
  } kBad[] = {
      {"fewer entries than it says", {head(3), good}},
      {"more entries than it says", {head(1), good}},
      {"no entries frame", {head(2)}},
      {"two entries frames", {head(2), good, good}},
      {"an entry cut short", {head(2), good.substr(0, good.size() - 1)}},
      {"a length past the end",
       {head(1), entries({{message("t"), std::string(64, 'x')}}).substr(0, 20)}},
      {"the first entry repeats a header", {head(1), entries({{"", "p1"}})}},
      {"a gap notice inside", {head(2), entries({{message("t"), "p1"}, {gap, "p2"}})}},
      {"garbage inside", {head(2), entries({{message("t"), "p1"}, {"\xc1", "p2"}})}},
      {"a notice with frames after it", {gap, message("t"), "p1"}},
      {"the old layout, a frame per part", {head(2), message("t"), "p1", message("t"), "p2"}},
  };
  for (const auto& c : kBad) {
    send(c.frames);
    Result<Delivery> d = client->Receive(std::chrono::seconds(5));
    EXPECT_EQ(d.status().code(), Code::kBadMessage) << c.label << ": " << d.status().ToString();
  }
  // Good ones after the bad: a repeated header and a header of its own.
  send({head(4),
        entries({{message("a"), "p1"}, {message("b"), "p2"}, {"", "p3"}, {message("c"), "p4"}})});
  for (auto [topic, payload] : std::vector<std::pair<std::string, std::string>>{
           {"a", "p1"}, {"b", "p2"}, {"b", "p3"}, {"c", "p4"}}) {
    Result<Delivery> d = client->Receive(std::chrono::seconds(5));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    auto* m = std::get_if<Message>(&*d);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->topic, topic);
    EXPECT_EQ(m->payload, payload);
    EXPECT_EQ(m->from, (MemberId{"fake", 1, 9}));
  }
  send({head(1), entries({{message("one"), ""}})});  // a batch of one, an empty payload
  Result<Delivery> d = client->Receive(std::chrono::seconds(5));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(std::get<Message>(*d).topic, "one");
  EXPECT_EQ(std::get<Message>(*d).payload, "");
}

}  // namespace
}  // namespace meshbus::testing
