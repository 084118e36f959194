package approval

import (
	"cmp"
	"slices"

	"github.com/spuff-dev/spuff/app/control/api"
)

func sortPending(items []api.PendingItem) {
	slices.SortFunc(items, func(x, y api.PendingItem) int {
		return cmp.Or(x.Since.Compare(y.Since), cmp.Compare(x.ID, y.ID))
	})
}
