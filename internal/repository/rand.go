package repository

import "crypto/rand"

var randReader = rand.Reader
