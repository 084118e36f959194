// Package control is the local API of spuff-app: HTTP+JSON over a unix
// socket that only the same user may open. The spuff CLI and the tray are
// its clients; neither touches the broker directly. Beside the socket it
// keeps the lock that makes spuff-app one per home.
package control
