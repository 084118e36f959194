package host

import (
	"log/slog"

	"github.com/spuff-dev/spuff/app/approval"
	"github.com/spuff-dev/spuff/app/keychain"
)

// approver builds the approver: grants kept in the platform keychain (or a
// 0600 file where there is none), Touch ID where the hardware has it, and
// the pending queue that `spuff approve` and the tray answer. With noPrompt
// (nobody will answer) a request that needs approval is denied at once.
func approver(st keychain.Store, headless, noPrompt bool, log *slog.Logger) *approval.Approver {
	var prompters []approval.Prompter
	if p, err := approval.TouchID(); err == nil {
		prompters = append(prompters, p)
	} else {
		log.Debug("touch id not used", "reason", err)
	}
	return approval.New(approval.Options{Store: st, Prompters: prompters, Headless: headless, NoPrompter: noPrompt, Log: log})
}
