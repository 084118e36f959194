package approval

import (
	"cmp"
	"slices"
)

func sortPending(items []PendingItem) {
	slices.SortFunc(items, func(x, y PendingItem) int {
		return cmp.Or(x.Since.Compare(y.Since), cmp.Compare(x.ID, y.ID))
	})
}
