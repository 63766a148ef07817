package avro

import "math"

func mathFloat(n uint64) float64 { return math.Float64frombits(n) }
