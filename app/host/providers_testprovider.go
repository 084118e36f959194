//go:build spuff_testprovider

package host

// Test builds (go build -tags spuff_testprovider) can also make sheds that
// are local spuff-guest processes; release builds cannot.
import _ "github.com/spuff-dev/spuff/provisioning/process"
