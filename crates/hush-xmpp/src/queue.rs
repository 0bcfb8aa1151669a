//! A first-in, first-out queue bounded in count and in bytes, for what a server sends faster
//! than the client takes it. What does not fit is refused at the door — never queued, never
//! allowed to push older entries out — so memory stays bounded whatever the server sends, and
//! what is kept stays in arrival order.

use std::collections::VecDeque;

/// Something whose memory use can be estimated, in bytes.
pub(crate) trait Weigh {
    /// About how many bytes the value holds, its own size included.
    fn weight(&self) -> usize;
}

/// A FIFO queue holding at most `max_items` entries and `max_bytes` of estimated weight.
#[derive(Debug)]
pub(crate) struct BoundedQueue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl<T: Weigh> BoundedQueue<T> {
    /// An empty queue with these bounds.
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            max_items,
            max_bytes,
        }
    }

    /// Appends `item` if both bounds allow it; otherwise gives it back, untouched.
    pub(crate) fn push(&mut self, item: T) -> Result<(), T> {
        let weight = item.weight();
        if self.items.len() >= self.max_items || self.bytes.saturating_add(weight) > self.max_bytes
        {
            return Err(item);
        }
        self.bytes += weight;
        self.items.push_back((item, weight));
        Ok(())
    }

    /// Takes the oldest entry.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let (item, weight) = self.items.pop_front()?;
        self.bytes -= weight;
        Some(item)
    }

    /// How many entries it holds.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The estimated weight of what it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Everything it holds, oldest first.
    pub(crate) fn into_vec(self) -> Vec<T> {
        self.items.into_iter().map(|(item, _)| item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for String {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn the_count_bound_refuses_the_newest() {
        let mut q = BoundedQueue::new(2, 1000);
        assert!(q.push("a".to_owned()).is_ok());
        assert!(q.push("b".to_owned()).is_ok());
        assert_eq!(q.push("c".to_owned()), Err("c".to_owned()));
        assert_eq!(q.pop().as_deref(), Some("a"));
        assert!(q.push("d".to_owned()).is_ok());
        assert_eq!(q.into_vec(), ["b", "d"]);
    }

    #[test]
    fn the_byte_bound_refuses_what_does_not_fit_and_frees_on_pop() {
        let mut q = BoundedQueue::new(100, 10);
        assert!(q.push("123456".to_owned()).is_ok());
        assert!(q.push("12345".to_owned()).is_err());
        assert!(q.push("1234".to_owned()).is_ok());
        assert_eq!((q.len(), q.bytes()), (2, 10));
        assert!(
            q.push("x".repeat(11)).is_err(),
            "heavier than the whole bound"
        );
        q.pop();
        assert_eq!((q.len(), q.bytes()), (1, 4));
        assert!(q.push("123456".to_owned()).is_ok());
    }
}
