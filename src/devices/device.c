/* Saving and restoring a device's state the one way most devices describe
 * it: a vmstate table, under the device's own lock. */
#include "devices/device.h"

#include <pthread.h>

#include "util/vmstate.h"

static pthread_mutex_t *state_lock(const struct device_ops *ops, void *dev)
{
	return ops->lock_offset_plus_1
		       ? (pthread_mutex_t *)((char *)dev + ops->lock_offset_plus_1 - 1)
		       : NULL;
}

bool device_has_state(const struct device_ops *ops)
{
	return ops->state || ops->save;
}

void device_save(const struct device_ops *ops, void *dev, struct state_writer *w)
{
	if (ops->save) {
		ops->save(dev, w);
		return;
	}
	pthread_mutex_t *lock = state_lock(ops, dev);
	if (lock)
		pthread_mutex_lock(lock);
	vmstate_save(ops->state, dev, w);
	if (lock)
		pthread_mutex_unlock(lock);
}

int device_restore(const struct device_ops *ops, void *dev, struct state_reader *r)
{
	if (ops->restore)
		return ops->restore(dev, r);
	pthread_mutex_t *lock = state_lock(ops, dev);
	if (lock)
		pthread_mutex_lock(lock);
	int ret = vmstate_load(ops->state, dev, r);
	if (lock)
		pthread_mutex_unlock(lock);
	return ret;
}
