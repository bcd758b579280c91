%% The Erlang/OTP pg side of `make compare` (issue #6), on three nodes on
%% loopback that bin/compare_pg.cc starts (and stops by their OS pids):
%% pg2 and pg3 run serve/0; pg1 runs main/1, which measures and prints
%% "RESULT <name> <value>" lines. Signals to other nodes are sent by
%% compare_pg.cc: main/1 prints "SIGNAL <KILL|STOP|CONT> <os pid>" and waits
%% for a line on stdin once it is sent, so the time is taken where the
%% signal is.
-module(pg_bench).
-export([main/1, serve/0, member/0, counter/2]).

-define(SCOPE, bench).

%% pg2, pg3: the scope, then nothing until stopped.
serve() ->
    {ok, _} = pg:start(?SCOPE),
    receive stop -> ok end.

member() ->
    receive stop -> ok end.

now_us() -> os:system_time(microsecond).

percentile(L, P) ->
    S = lists:sort(L),
    N = length(S),
    lists:nth(max(1, min(N, round(P * (N - 1)) + 1)), S).

result(Name, Value) ->
    io:format("RESULT ~s ~p~n", [Name, Value]).

%% A watcher on Node: the scope's join and leave events, forwarded with the
%% time they were seen there.
watch(Node, To) ->
    spawn(Node, fun() ->
        {_Ref, _} = pg:monitor_scope(?SCOPE),
        To ! {watching, self()},
        watch_loop(To)
    end),
    receive {watching, W} -> W after 5000 -> error(no_watcher) end.

watch_loop(To) ->
    receive
        {_Ref, join, Group, Pids} -> To ! {seen, join, Group, length(Pids), now_us()}, watch_loop(To);
        {_Ref, leave, Group, Pids} -> To ! {seen, leave, Group, length(Pids), now_us()}, watch_loop(To);
        stop -> ok
    end.

main([N2, N3]) ->
    Pg2 = list_to_atom(N2),
    Pg3 = list_to_atom(N3),
    {ok, _} = pg:start(?SCOPE),
    [pong = wait_ping(N, 50) || N <- [Pg2, Pg3]],
    join_latency(Pg2, 2000),
    join_throughput(Pg2, 10000, 1000),
    broadcast(Pg2, Pg3, 100000),
    % kill -9 first: a stopped node that resumes may make global cut others off.
    failure(Pg2, 'KILL', "kill_ms"),
    failure(Pg3, 'STOP', "stop_ms"),
    io:format("DONE~n"),
    halt(0).

wait_ping(_N, 0) -> pang;
wait_ping(N, K) ->
    case net_adm:ping(N) of
        pong -> pong;
        pang -> timer:sleep(100), wait_ping(N, K - 1)  % the node is starting: retry
    end.

%% A join on pg1 until pg2's monitor sees it, one at a time.
join_latency(Observer, Samples) ->
    W = watch(Observer, self()),
    Us = [begin
              P = spawn(fun member/0),
              T0 = now_us(),
              ok = pg:join(?SCOPE, {lat, I}, P),
              receive {seen, join, {lat, I}, _, T1} -> T1 - T0 after 5000 -> error(no_join) end
          end || I <- lists:seq(1, Samples)],
    W ! stop,
    result("join_p50_us", percentile(Us, 0.5)),
    result("join_p99_us", percentile(Us, 0.99)).

%% Members joins over Groups groups, one join per call, until pg2 saw them all.
join_throughput(Observer, Members, Groups) ->
    W = watch(Observer, self()),
    T0 = now_us(),
    Self = self(),
    spawn(fun() ->
        [ok = pg:join(?SCOPE, {thr, I rem Groups}, spawn(fun member/0))
         || I <- lists:seq(1, Members)],
        Self ! joined
    end),
    T1 = count_joins(Members, 0, 0),
    W ! stop,
    result("joins_per_s", round(Members / ((T1 - T0) / 1.0e6))).

count_joins(Want, Seen, Last) when Seen >= Want -> Last;
count_joins(Want, Seen, Last) ->
    receive
        {seen, join, {thr, _}, N, T} -> count_joins(Want, Seen + N, max(Last, T));
        joined -> count_joins(Want, Seen, Last)
    after 60000 -> error({joins_seen, Seen})
    end.

%% Messages to every member of a group of 3 (one per node): deliveries per second.
counter(Want, To) ->
    counter_loop(Want, 0, To).
counter_loop(Want, Want, To) -> To ! {counted, now_us()};
counter_loop(Want, N, To) ->
    receive _ -> counter_loop(Want, N + 1, To) end.

broadcast(Pg2, Pg3, Count) ->
    Self = self(),
    Members = [spawn(N, pg_bench, counter, [Count, Self]) || N <- [node(), Pg2, Pg3]],
    [ok = rpc:call(node(M), pg, join, [?SCOPE, bcast, M]) || M <- Members],
    wait_members(bcast, 3, 100),
    Ms = pg:get_members(?SCOPE, bcast),
    T0 = now_us(),
    send_all(Ms, Count),
    Ends = [receive {counted, T} -> T after 60000 -> error(broadcast_incomplete) end
            || _ <- Members],
    result("broadcast_deliveries_per_s", round(3 * Count / ((lists:max(Ends) - T0) / 1.0e6))).

send_all(_Ms, 0) -> ok;
send_all(Ms, K) ->
    [P ! m || P <- Ms],
    send_all(Ms, K - 1).

wait_members(_G, _N, 0) -> error(members_not_seen);
wait_members(G, N, K) ->
    case length(pg:get_members(?SCOPE, G)) of
        N -> ok;
        _ -> timer:sleep(10), wait_members(G, N, K - 1)  % replication: retry
    end.

%% A member on Victim; the signal; until pg1's monitor sees it leave.
failure(Victim, Signal, Name) ->
    Group = {fail, Signal},
    M = spawn(Victim, fun member/0),
    ok = rpc:call(Victim, pg, join, [?SCOPE, Group, M]),
    wait_members(Group, 1, 300),
    W = watch(node(), self()),
    OsPid = rpc:call(Victim, os, getpid, []),
    io:format("SIGNAL ~s ~s~n", [Signal, OsPid]),
    Line = io:get_line(""),
    T0 = list_to_integer(string:trim(Line)),
    T1 = receive {seen, leave, Group, _, T} -> T after 30000 -> error({no_leave, Signal}) end,
    W ! stop,
    result(Name, (T1 - T0) / 1000),
    case Signal of
        'STOP' -> io:format("SIGNAL CONT ~s~n", [OsPid]), io:get_line("");
        _ -> ok
    end.
