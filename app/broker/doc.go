// Package broker runs the host side of every shed: one session per attached
// shed (dial, hello, reconnect) and one request pipeline that every guest
// request goes through — identity from the session, replay guard, namespace
// check, rate limit, policy, approval, the namespace's Service, audit, reply.
// It holds no UI and no transport code; both are injected.
package broker
