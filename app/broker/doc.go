// Package broker runs the host side of every shed: one attachment per attached
// shed (dial, hello, reconnect) and one request pipeline that every guest
// request goes through — identity from the attachment, replay guard, namespace
// check, rate limit, approval, the namespace's helper.Service, audit, reply.
// It holds no UI and no transport code; both are injected.
package broker
