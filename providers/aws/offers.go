package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/providers/offers"
)

// DefaultOffersMaxAge is how long the account's offers are taken from
// the cache before they are read again: spot prices move within the
// hour, the types and zones an account has seldom do.
const DefaultOffersMaxAge = time.Hour

// OfferCache keeps the account's offers (what [Cloud.Offers] read from
// EC2 and the Price List API) in a file, so that a plan does not start
// dstack-provider-aws and call four APIs per region each time. Each
// offer's PricedAt says when it was read, and the plan shows that age.
type OfferCache struct {
	// Dir holds the cache files: one per set of settings that shapes the
	// offers (regions, endpoint, profile), named by their hash.
	Dir string
	// MaxAge is how long cached offers are used (DefaultOffersMaxAge
	// when zero).
	MaxAge time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// cacheFile is what a cache file holds.
type cacheFile struct {
	// Key says which settings the offers were read for.
	Key    string         `json:"key"`
	ReadAt time.Time      `json:"read_at"`
	Offers []offers.Offer `json:"offers"`
}

// key is what makes two settings' offers differ. Credentials are left
// out on purpose: the cache must not hold anything derived from them.
func cacheKey(s Settings) string {
	return strings.Join(s.Regions, ",") + "|" + s.Endpoint + "|" + s.Profile
}

func (c *OfferCache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.Dir, "offers-"+hex.EncodeToString(sum[:8])+".json")
}

func (c *OfferCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// load returns the cached offers of key when they are younger than
// MaxAge.
func (c *OfferCache) load(key string) ([]offers.Offer, bool) {
	data, err := os.ReadFile(c.path(key))
	if err != nil {
		return nil, false
	}
	var f cacheFile
	if err := json.Unmarshal(data, &f); err != nil || f.Key != key || len(f.Offers) == 0 {
		return nil, false
	}
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultOffersMaxAge
	}
	if age := c.now().Sub(f.ReadAt); age < 0 || age >= maxAge {
		return nil, false
	}
	return f.Offers, true
}

// save writes the offers of key, read at the time of their PricedAt.
func (c *OfferCache) save(key string, list []offers.Offer) error {
	readAt := c.now()
	for _, o := range list {
		if !o.PricedAt.IsZero() && o.PricedAt.Before(readAt) {
			readAt = o.PricedAt
		}
	}
	data, err := json.Marshal(cacheFile{Key: key, ReadAt: readAt.UTC(), Offers: list})
	if err != nil {
		return fmt.Errorf("encoding the aws offers cache: %w", err)
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("creating the aws offers cache: %w", err)
	}
	if err := renameio.WriteFile(c.path(key), data, 0o600); err != nil {
		return fmt.Errorf("writing the aws offers cache: %w", err)
	}
	return nil
}

// accountOffers are the account's offers: from the cache while they are
// fresh, else read through cloud (which may start dstack-provider-aws)
// and cached. When they cannot be read (no credentials, EC2 or the
// Price List API not reachable, the program missing) the embedded
// catalog's offers stand in, so that a plan still has offers and prices
// (list prices, without PricedAt); the next call tries the account
// again. The error is ctx's, or the catalog's.
func accountOffers(ctx context.Context, cache *OfferCache, s Settings, cloud func(context.Context) (Cloud, error)) ([]offers.Offer, error) {
	key := cacheKey(s)
	if list, ok := cache.load(key); ok {
		return list, nil
	}
	list, err := readAccountOffers(ctx, cloud)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return CatalogOffers(s.Regions)
	}
	// A cache that cannot be written costs only the next plan a read.
	_ = cache.save(key, list)
	return list, nil
}

func readAccountOffers(ctx context.Context, cloud func(context.Context) (Cloud, error)) ([]offers.Offer, error) {
	c, err := cloud(ctx)
	if err != nil {
		return nil, err
	}
	list, err := c.Offers(ctx)
	if err == nil && len(list) == 0 {
		err = errors.New("the account lists no instance type with a price in the configured regions")
	}
	return list, err
}
