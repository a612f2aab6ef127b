package signature

import "time"

func zeroTime() time.Time { return time.Time{} }
