package clock

import "time"

// sameBoot reports whether a and b were stamped in one boot, so that
// their monotonic readings can be compared. A stamp without a boot id
// or a monotonic reading is of no known boot.
func sameBoot(a, b Stamp) bool {
	return a.Boot != "" && a.Boot == b.Boot && a.Mono > 0 && b.Mono > 0
}

// Correct dates an unsynced stamp s from ref, a synced stamp of the
// same boot taken at or after s: the clock ran ref.Mono - s.Mono
// between the two, so s happened that long before ref.Wall. ok is
// false when there is nothing to correct (s was synced) or nothing to
// correct it by: ref unsynced, another boot (a reboot resets the
// monotonic clock, so a stamp of an earlier boot is never re-dated), or
// ref taken before s. The result is in ref.Wall's location.
func Correct(s, ref Stamp) (t time.Time, ok bool) {
	if s.Synced || !ref.Synced || !sameBoot(s, ref) || ref.Mono < s.Mono {
		return time.Time{}, false
	}
	return ref.Wall.Add(-(ref.Mono - s.Mono)), true
}

// Elapsed is the real time between in and out, for a duration a payroll
// system may take at face value. Within one boot it is the difference of
// the monotonic readings, whatever the wall clock did meanwhile (a sync,
// a step backwards, a DST change). Across boots only the wall times can
// say, and only when both were synced. ok is false when the duration
// cannot be trusted: a side unsynced across boots, or out before in.
func Elapsed(in, out Stamp) (d time.Duration, ok bool) {
	switch {
	case sameBoot(in, out):
		d = out.Mono - in.Mono
	case in.Synced && out.Synced:
		d = out.Wall.Sub(in.Wall)
	default:
		return 0, false
	}
	if d < 0 {
		return 0, false
	}
	return d, true
}
